"""Inbound channels: one module per service, each turning what the service sends into core.conversation values
(InboundMessage, DeliveryStatus, Unreadable) after checking that the service sent it. They read and check; the
conversations service (services/conversations.py) stores. Their settings are channels/inbound/config.py."""
