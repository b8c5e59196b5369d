"""The leads the demo posts: a Ukrainian site form, a chat bot and ad campaigns, repeats and junk among them."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

__all__ = ["LeadFactory"]

FIRST_NAMES = (
    "Іван", "Олександр", "Марія", "Оксана", "Дмитро", "Наталія", "Андрій", "Юлія", "Сергій", "Ірина", "Богдан",
    "Світлана", "Василь", "Катерина", "Михайло", "Тетяна", "Роман", "Галина", "Петро", "Софія",
)  # fmt: skip
# Surnames that are the same for women and men, so any first name goes with any of them.
SURNAMES = (
    "Петренко", "Коваленко", "Бондаренко", "Шевчук", "Ткачук", "Кравченко", "Олійник", "Мельничук", "Савченко",
    "Руденко", "Гнатюк", "Лисенко", "Мороз", "Левченко", "Поліщук", "Собко", "Марченко", "Гончар",
)  # fmt: skip
MOBILE_CODES = ("050", "063", "066", "067", "068", "073", "093", "095", "096", "097", "098", "099")
CREDIT_ASKS = (
    "Потрібен кредит готівкою на 50 000 грн",
    "Хочу кредит на ремонт квартири",
    "Цікавить кредит на авто, передзвоніть",
    "Яка ставка на кредит до 100 000 грн?",
)
LEASING_ASKS = (
    "Лізинг трактора для господарства",
    "Потрібна вантажівка в лізинг для доставки",
    "Лізинг обладнання для пекарні",
    "Цікавить лізинг легкових авто для таксі",
)
COMPANIES = ("ТОВ «Агросвіт»", "ФОП Коваленко", "ТОВ «Хліб Поділля»", "ТОВ «Карпати Логістик»", "ПП «Дніпро Буд»")
ADS = (("facebook", "credit-autumn"), ("google", "leasing-b2b"), ("instagram", "credit-fast"))


@dataclass(frozen=True, slots=True)
class _Client:
    name: str
    digits: str  # ten digits, 0XXXXXXXXX
    product: str | None


def _spaced(digits: str) -> str:
    return f"{digits[:3]} {digits[3:6]} {digits[6:8]} {digits[8:]}"


class LeadFactory:
    """Leads as a Ukrainian site form, chat bot and ad campaigns send them; the same seed gives the same stream."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.clients: list[_Client] = []

    def next(self) -> dict[str, Any]:
        roll = self.rng.random()
        if roll < 0.07:
            return self._junk()
        if roll < 0.19 and len(self.clients) >= 3:
            return self._again()
        return self._new()

    def _phone(self) -> str:
        return self.rng.choice(MOBILE_CODES) + str(self.rng.randrange(10**6, 10**7))

    def _channel(self, lead: dict[str, Any]) -> dict[str, Any]:
        channel = self.rng.choices(("web", "chat", "ads"), (50, 25, 25))[0]
        lead["channel"] = channel
        if channel == "web":
            lead["source"] = "site-form"
        elif channel == "chat":
            lead["source"] = "telegram-bot"
        else:
            network, campaign = self.rng.choice(ADS)
            lead.update(source=f"{network}-ads", utm_source=network, utm_medium="cpc", utm_campaign=campaign)
        return lead

    def _new(self) -> dict[str, Any]:
        rng = self.rng
        product = rng.choices(("credit", "leasing", None), (60, 35, 5))[0]
        client = _Client(f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}", self._phone(), product)
        self.clients.append(client)
        lead: dict[str, Any] = {"name": client.name, "phone": _spaced(client.digits), "language": "uk"}
        if product == "leasing":
            lead.update(product=product, message=rng.choice(LEASING_ASKS), company=rng.choice(COMPANIES),
                        budget=rng.randrange(8, 60) * 100_000)  # fmt: skip
        elif product == "credit":
            lead.update(product=product, message=rng.choice(CREDIT_ASKS))
        else:
            lead["message"] = "Передзвоніть, будь ласка, є питання"
        return self._channel(lead)

    def _again(self) -> dict[str, Any]:
        """An earlier client writing again, the phone typed another way: leadflow should see it is the same person."""
        client = self.rng.choice(self.clients)
        d = client.digits
        phone = self.rng.choice((f"+38{d}", f"({d[:3]}) {d[3:6]}-{d[6:8]}-{d[8:]}", f"+38 {d[:3]} {d[3:6]} {d[6:]}"))
        lead: dict[str, Any] = {"name": client.name, "phone": phone, "message": "Залишав заявку, досі чекаю дзвінка"}
        if client.product:
            lead["product"] = client.product
        return self._channel(lead)

    def _junk(self) -> dict[str, Any]:
        choices: list[dict[str, Any]] = [
            {"name": "test lead", "phone": _spaced(self._phone()), "channel": "web", "source": "site-form"},
            {"name": "Casino Royal", "phone": _spaced(self._phone()), "channel": "ads", "message": "casino bonus 500"},
            {"name": "Марина", "email": "marina@demo-credit.ua", "channel": "web", "message": "перевірка форми"},
            {"name": "Анонім", "channel": "chat", "message": "?"},
        ]
        return self.rng.choice(choices)
