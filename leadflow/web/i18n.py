"""Interface strings in Ukrainian, Russian and English, and the visitor's language from the request.

Message ids are the English text (as gettext does), so a missing translation shows English, never a key.
"""

from __future__ import annotations

from collections.abc import Callable

LANGUAGES = ("uk", "ru", "en")
DEFAULT = "en"

_CATALOG: dict[str, dict[str, str]] = {
    "uk": {
        "Thank you!": "Дякуємо!",
        "We have your request and will contact you shortly.": "Ми отримали вашу заявку і скоро зв'яжемося з вами.",
        "We already have this request and will contact you shortly.": (
            "Ця заявка вже є у нас, ми скоро зв'яжемося з вами."
        ),
        "Please check the form": "Перевірте, будь ласка, форму",
        "We could not take the request:": "Не вдалося прийняти заявку:",
        "Send again": "Надіслати ще раз",
        "Name": "Ім'я",
        "Phone": "Телефон",
        "E-mail": "Електронна пошта",
        "Message": "Повідомлення",
        "Something went wrong": "Щось пішло не так",
        "Error": "Помилка",
        "Go back": "Повернутися",
        "Reference": "Номер звернення",
        "Page not found": "Сторінку не знайдено",
        "Please check the phone number.": "Перевірте номер телефону.",
        "Please check the e-mail address.": "Перевірте адресу електронної пошти.",
        "Leave a phone number or an e-mail so we can reach you.": (
            "Залиште номер телефону або електронну пошту, щоб ми могли з вами зв'язатися."
        ),
        "Sign in": "Увійти",
        "Username": "Ім'я користувача",
        "Password": "Пароль",
        "Signed in as": "Ви увійшли як",
        "Sign out": "Вийти",
        "Wrong username or password.": "Неправильне ім'я користувача або пароль.",
        "Too many failed sign-ins. Try again in a few minutes.": (
            "Забагато невдалих спроб входу. Спробуйте за кілька хвилин."
        ),
        "The form is empty.": "Форма порожня.",
    },
    "ru": {
        "Thank you!": "Спасибо!",
        "We have your request and will contact you shortly.": "Мы получили вашу заявку и скоро свяжемся с вами.",
        "We already have this request and will contact you shortly.": (
            "Эта заявка уже есть у нас, мы скоро свяжемся с вами."
        ),
        "Please check the form": "Пожалуйста, проверьте форму",
        "We could not take the request:": "Не удалось принять заявку:",
        "Send again": "Отправить ещё раз",
        "Name": "Имя",
        "Phone": "Телефон",
        "E-mail": "Электронная почта",
        "Message": "Сообщение",
        "Something went wrong": "Что-то пошло не так",
        "Error": "Ошибка",
        "Go back": "Вернуться",
        "Reference": "Номер обращения",
        "Page not found": "Страница не найдена",
        "Please check the phone number.": "Проверьте номер телефона.",
        "Please check the e-mail address.": "Проверьте адрес электронной почты.",
        "Leave a phone number or an e-mail so we can reach you.": (
            "Оставьте номер телефона или электронную почту, чтобы мы могли с вами связаться."
        ),
        "Sign in": "Войти",
        "Username": "Имя пользователя",
        "Password": "Пароль",
        "Signed in as": "Вы вошли как",
        "Sign out": "Выйти",
        "Wrong username or password.": "Неверное имя пользователя или пароль.",
        "Too many failed sign-ins. Try again in a few minutes.": (
            "Слишком много неудачных попыток входа. Попробуйте через несколько минут."
        ),
        "The form is empty.": "Форма пустая.",
    },
}


def translator(language: str) -> Callable[[str], str]:
    table = _CATALOG.get(language, {})
    return lambda text: table.get(text, text)


def missing(language: str, texts: list[str]) -> list[str]:
    """The given message ids that have no translation in `language` (English needs none)."""
    if language == DEFAULT:
        return []
    table = _CATALOG.get(language, {})
    return [t for t in texts if t not in table]


def pick_language(accept_language: str | None, preferred: str | None = None) -> str:
    """An explicit choice (the form's own language) wins; then the browser's Accept-Language order; else English."""
    for candidate in (preferred, *_accepted(accept_language or "")):
        if candidate:
            base = candidate.strip().lower().replace("_", "-").split("-")[0]
            base = {"ua": "uk"}.get(base, base)
            if base in LANGUAGES:
                return base
    return DEFAULT


def _accepted(header: str) -> list[str]:
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and quality > 0:
            weighted.append((-quality, position, tag))
    return [tag for _, _, tag in sorted(weighted)]
