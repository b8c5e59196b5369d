"""leadflow: collect, clean, qualify and route every inbound lead, and make sure someone calls back."""

__version__ = "0.1.0"
