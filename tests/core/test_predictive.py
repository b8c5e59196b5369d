"""The win-probability model on generated history with a known signal: does it find the signal, and only it?"""

from __future__ import annotations

import json
import math
import random
from decimal import Decimal
from itertools import product

import pytest

from leadflow.core.lead import CleanLead
from leadflow.core.predictive import (
    FEATURES_VERSION,
    WinModel,
    evaluate,
    features,
    roc_auc,
    split_holdout,
    train,
)

# ---- the generator: what really drives a win, and a lot of noise around it ---------------------------------

CHANNELS = (("web", 35), ("ads", 30), ("referral", 15), ("phone", 12), ("chat", 8))
SOURCES = {
    "web": ("site", "landing"), "ads": ("google", "facebook"), "referral": ("referral", "partner"),
    "phone": (None,), "chat": ("telegram", "viber"),
}  # fmt: skip
PRICE_MESSAGES = ("What is the price of leasing for a truck?", "Скільки коштує кредит на авто?", "Цена на станок?")
OTHER_MESSAGES = (
    "Please call me back", "Hello", "Добрий день, зателефонуйте мені", "Хочу купить", "",
    "Need a consultation about the terms, the documents required and how long it takes for a company like ours.",
)  # fmt: skip


def true_logit(channel: str, budget: Decimal | None, mentions_price: bool) -> float:
    """The only signal there is: referrals and big budgets win, ads lose, asking the price helps."""
    z = -1.2 + {"referral": 2.0, "ads": -1.2}.get(channel, 0.0) + (0.8 if mentions_price else 0.0)
    if budget is None:
        return z - 0.5
    return z + (2.0 if budget >= 100_000 else 0.6 if budget >= 10_000 else 0.0)


def generate(n: int, seed: int = 1) -> list[tuple[CleanLead, bool, float]]:
    """(lead, won, true probability); region, product, language, phone type, e-mail and company are noise."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        channel = rng.choices([c for c, _ in CHANNELS], [w for _, w in CHANNELS])[0]
        source = rng.choice(SOURCES[channel])
        budget = None if rng.random() < 0.25 else Decimal(round(10 ** rng.uniform(2, 6)))
        mentions_price = rng.random() < 0.3
        message = rng.choice(PRICE_MESSAGES if mentions_price else OTHER_MESSAGES)
        lead = CleanLead(
            channel=channel, source=source, budget=budget, message=message or None,
            utm={"utm_source": source or "", "utm_medium": "cpc"} if channel == "ads" else {},
            phone_type=rng.choice(("mobile", "landline", None)),
            email=f"client{i}@example.test" if rng.random() < 0.7 else None,
            company=f"Company {i}" if rng.random() < 0.5 else None,
            region=rng.choice(("UA", "PL", "DE")), product=rng.choice(("credit", "leasing", "insurance")),
            language=rng.choice(("uk", "ru", "en")),
        )  # fmt: skip
        p = 1 / (1 + math.exp(-true_logit(channel, budget, mentions_price)))
        out.append((lead, rng.random() < p, p))
    return out


@pytest.fixture(scope="module")
def history() -> list[tuple[CleanLead, bool, float]]:
    return generate(6000)


@pytest.fixture(scope="module")
def fitted(history: list[tuple[CleanLead, bool, float]]) -> tuple[WinModel, list[tuple[CleanLead, bool]]]:
    train_part, holdout = split_holdout([(lead, won) for lead, won, _ in history], 0.25, seed=0)
    return train(train_part), holdout


# ---- quality on held-out leads ------------------------------------------------------------------------------


def test_held_out_auc_is_close_to_what_the_true_signal_allows(
    history: list[tuple[CleanLead, bool, float]], fitted: tuple[WinModel, list[tuple[CleanLead, bool]]]
) -> None:
    model, holdout = fitted
    metrics = evaluate(model, holdout)
    truth = {id(lead): p for lead, _, p in history}
    best_possible = roc_auc([truth[id(lead)] for lead, _ in holdout], [won for _, won in holdout])
    assert (metrics.n, metrics.positives) == (1500, sum(won for _, won in holdout))
    assert metrics.auc >= 0.78
    assert metrics.auc >= best_possible - 0.02  # nearly all the signal there is, from 4,500 leads
    assert metrics.brier <= 0.8 * metrics.brier_baseline


def test_probabilities_are_calibrated_on_held_out_leads(
    fitted: tuple[WinModel, list[tuple[CleanLead, bool]]],
) -> None:
    metrics = evaluate(*fitted)
    assert sum(b.count for b in metrics.calibration) == metrics.n
    for b in metrics.calibration:
        assert b.lo <= b.predicted_mean < b.hi
        if b.count >= 30:
            # Within three binomial standard errors, plus a little for the model's own error.
            noise = 3 * math.sqrt(b.predicted_mean * (1 - b.predicted_mean) / b.count)
            assert abs(b.predicted_mean - b.observed_rate) <= noise + 0.02, b
    assert metrics.calibration_error < 0.05


def test_with_shuffled_labels_the_model_is_no_better_than_guessing(
    history: list[tuple[CleanLead, bool, float]],
) -> None:
    labels = [won for _, won, _ in history]
    random.Random(3).shuffle(labels)
    train_part, holdout = split_holdout([(lead, won) for (lead, _, _), won in zip(history, labels, strict=True)])
    assert abs(evaluate(train(train_part), holdout).auc - 0.5) < 0.05


def test_learned_weights_follow_the_generator_and_ignore_the_noise(
    fitted: tuple[WinModel, list[tuple[CleanLead, bool]]],
) -> None:
    weights = fitted[0].weights
    assert weights["channel=referral"] > 0.5
    assert weights["budget≥100k"] > 1.0
    assert weights["message mentions price"] > 0.4
    assert weights["channel=ads"] + weights["utm_medium=cpc"] < -0.5  # ads leads carry both
    noise = ("region=", "product=", "language=", "phone_type=", "no phone", "company", "e-mail")
    for name, weight in weights.items():
        if any(word in name for word in noise):
            assert abs(weight) < 0.25, name


def test_factors_name_what_pushed_a_referral_lead_up_and_an_ads_lead_down(
    fitted: tuple[WinModel, list[tuple[CleanLead, bool]]],
) -> None:
    model = fitted[0]
    referral = CleanLead(channel="referral", source="referral", budget=Decimal(250_000), message="Ціна лізингу?")
    prediction = model.predict(referral)
    up = [f for f in prediction.factors if f.contribution > 0]
    down = [f for f in prediction.factors if f.contribution < 0]
    assert prediction.probability > 0.8
    assert 1 <= len(up) <= 3 and len(down) <= 3
    assert [f.contribution for f in up] == sorted((f.contribution for f in up), reverse=True)
    assert {"channel=referral", "budget≥100k"} <= {f.feature for f in up}
    text = next(f.text for f in up if f.feature == "channel=referral")
    assert text.startswith("channel=referral raised it (+") and text.endswith(")")
    assert prediction.factors_json()[0] == {
        "feature": up[0].feature, "contribution": up[0].contribution, "text": up[0].text,
    }  # fmt: skip

    ads = CleanLead(channel="ads", source="google", utm={"utm_source": "google", "utm_medium": "cpc"})
    cold = model.predict(ads)
    assert cold.probability < 0.15
    assert "channel=ads" in {f.feature for f in cold.factors if f.contribution < 0}
    assert any(f.text.startswith("channel=ads lowered it (-") for f in cold.factors)
    # The probability comes from the bias and every feature's weight, not only the six shown.
    everything = model.bias + sum(model.weights.get(name, 0.0) for name in features(ads))
    assert cold.probability == pytest.approx(1 / (1 + math.exp(-everything)))


def test_a_feature_never_seen_in_training_changes_nothing(
    fitted: tuple[WinModel, list[tuple[CleanLead, bool]]],
) -> None:
    model = fitted[0]
    known = CleanLead(channel="web", source="site")
    unknown = CleanLead(channel="web", source="a brand new partner")
    lift = model.weights["source=site"] - model.weights.get("source=a brand new partner", 0.0)
    assert model.logit(known) - model.logit(unknown) == pytest.approx(lift)


# ---- the fit itself ----------------------------------------------------------------------------------------


def test_with_little_penalty_the_fit_reproduces_observed_rates() -> None:
    # Two kinds of lead, 30 of 100 and 70 of 100 won: the exact optimum predicts those rates.
    examples = [(CleanLead(channel="web"), i < 30) for i in range(100)]
    examples += [(CleanLead(channel="referral"), i < 70) for i in range(100)]
    model = train(examples, l2=1e-6)
    assert model.probability(CleanLead(channel="web")) == pytest.approx(0.3, abs=1e-4)
    assert model.probability(CleanLead(channel="referral")) == pytest.approx(0.7, abs=1e-4)
    assert (model.trained_on, model.positive_rate) == (200, 0.5)


def test_training_is_deterministic_and_does_not_depend_on_order(
    history: list[tuple[CleanLead, bool, float]],
) -> None:
    examples = [(lead, won) for lead, won, _ in history[:1500]]
    first, again = train(examples), train(examples)
    assert first == again  # same data, same weights, bit for bit
    reordered = train(list(reversed(examples)))
    assert reordered.weights.keys() == first.weights.keys()
    for name, weight in first.weights.items():
        assert reordered.weights[name] == pytest.approx(weight, abs=1e-4)


def test_rare_features_get_no_weight() -> None:
    examples = [(CleanLead(channel="web", source="once" if i == 0 else None), i % 2 == 0) for i in range(20)]
    assert "source=once" not in train(examples).weights
    assert "source=once" in train(examples, min_count=1).weights


def test_training_refuses_one_class_and_no_penalty() -> None:
    with pytest.raises(ValueError, match="both won and lost"):
        train([(CleanLead(channel="web"), True)] * 10)
    with pytest.raises(ValueError, match="l2 must be positive"):
        train([(CleanLead(channel="web"), True), (CleanLead(channel="web"), False)], l2=0)


def test_json_round_trip_is_exact(fitted: tuple[WinModel, list[tuple[CleanLead, bool]]]) -> None:
    model, holdout = fitted
    data = json.loads(json.dumps(model.to_json()))
    assert data["kind"] == "logistic" and data["features_version"] == FEATURES_VERSION
    back = WinModel.from_json(data)
    assert back == model
    assert [back.probability(lead) for lead, _ in holdout[:50]] == [model.probability(lead) for lead, _ in holdout[:50]]


def test_a_model_of_another_feature_set_is_refused(fitted: tuple[WinModel, list[tuple[CleanLead, bool]]]) -> None:
    data = fitted[0].to_json() | {"features_version": FEATURES_VERSION + 1}
    with pytest.raises(ValueError, match="retrain it with `leadflow train-scoring`"):
        WinModel.from_json(data)
    with pytest.raises(ValueError, match="kind 'forest'"):
        WinModel.from_json(fitted[0].to_json() | {"kind": "forest"})


# ---- features ---------------------------------------------------------------------------------------------


def test_features_have_names_a_person_can_read() -> None:
    lead = CleanLead(
        channel="Ads", source="Google  Ads", phone_type="mobile", email="a@b.test", region="UA", product="Leasing",
        language="uk", budget=Decimal("150000"), message="Розрахуйте, будь ласка, вартість лізингу",
        utm={"utm_source": "google", "utm_medium": "cpc"},
    )  # fmt: skip
    assert features(lead) == {
        "channel=ads": 1.0, "source=google ads": 1.0, "utm_source=google": 1.0, "utm_medium=cpc": 1.0,
        "region=UA": 1.0, "product=leasing": 1.0, "language=uk": 1.0, "phone_type=mobile": 1.0,
        "has e-mail": 1.0, "no company": 1.0, "budget≥100k": 1.0, "message under 50 chars": 1.0,
        "message mentions price": 1.0, "message asks for a quote": 1.0,
    }  # fmt: skip
    bare = features(CleanLead(channel="web"))
    assert set(bare) == {
        "channel=web", "source not given", "utm_source not given", "utm_medium not given", "region not given",
        "product not given", "language not given", "no phone", "no e-mail", "no company", "budget not given",
        "no message",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("budget", "bucket"),
    [("0", "budget<1k"), ("999.99", "budget<1k"), ("1000", "budget 1k-10k"), ("9999", "budget 1k-10k"),
     ("10000", "budget 10k-100k"), ("99999.99", "budget 10k-100k"), ("100000", "budget≥100k"), ("5e9", "budget≥100k")],
)  # fmt: skip
def test_budget_buckets_are_on_a_log_scale(budget: str, bucket: str) -> None:
    assert bucket in features(CleanLead(channel="web", budget=Decimal(budget)))


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("How much is the price?", {"message mentions price"}),
        ("Яка ціна?", {"message mentions price"}),
        ("Сколько стоит доставка", {"message mentions price"}),
        ("Please send a quote", {"message asks for a quote"}),
        ("Прошу розрахувати лізинг", {"message asks for a quote"}),
        ("Нужно рассчитать кредит", {"message asks for a quote"}),
        ("Хочу купити два", {"message wants to buy"}),
        ("Call me tomorrow", set()),
        ("Special offering", {"message asks for a quote"}),  # a stem matches its endings
        ("A disorder", set()),  # ...but only at the start of a word
    ],
)
def test_buying_words_in_three_languages(message: str, expected: set[str]) -> None:
    found = {name for name in features(CleanLead(channel="web", message=message)) if name.startswith("message ")}
    assert {name for name in found if "chars" not in name} == expected


def test_message_length_buckets() -> None:
    def bucket(text: str) -> str:
        return next(n for n in features(CleanLead(channel="web", message=text)) if "chars" in n)

    assert (bucket("x" * 49), bucket("x" * 50), bucket("x" * 299), bucket("x" * 300)) == (
        "message under 50 chars", "message 50-299 chars", "message 50-299 chars", "message 300+ chars",
    )  # fmt: skip
    assert "no message" in features(CleanLead(channel="web", message="   "))


# ---- metrics and the split ---------------------------------------------------------------------------------


def test_roc_auc_equals_a_brute_force_pairwise_count() -> None:
    rng = random.Random(11)
    for _ in range(50):
        n = rng.randint(2, 40)
        scores = [round(rng.random(), 1) for _ in range(n)]  # one decimal: plenty of ties
        labels = [rng.random() < 0.4 for _ in range(n)]
        if all(labels) or not any(labels):
            continue
        pairs = [(p, q) for p, q in product(range(n), repeat=2) if labels[p] and not labels[q]]
        wins = sum(1.0 if scores[p] > scores[q] else 0.5 if scores[p] == scores[q] else 0.0 for p, q in pairs)
        assert roc_auc(scores, labels) == pytest.approx(wins / len(pairs))
    assert roc_auc([0.1, 0.2, 0.3], [False, False, True]) == 1.0
    assert roc_auc([0.5, 0.5], [True, False]) == 0.5
    with pytest.raises(ValueError, match="both won and lost"):
        roc_auc([0.1, 0.9], [True, True])


def test_metrics_round_trip_through_json(fitted: tuple[WinModel, list[tuple[CleanLead, bool]]]) -> None:
    metrics = evaluate(*fitted)
    assert type(metrics).from_json(json.loads(json.dumps(metrics.to_json()))) == metrics


def test_split_holdout_is_seeded_stratified_and_complete() -> None:
    examples = [(i, i % 4 == 0) for i in range(400)]  # 100 won, 300 lost
    train_part, holdout = split_holdout(examples, 0.25, seed=7)
    assert split_holdout(examples, 0.25, seed=7) == (train_part, holdout)
    assert split_holdout(examples, 0.25, seed=8) != (train_part, holdout)
    assert sorted(train_part + holdout) == examples
    assert (sum(w for _, w in holdout), len(holdout)) == (25, 100)
    # Even two won leads are split one and one, so the held-out part can still be scored.
    few = [(i, i < 2) for i in range(60)]
    train_few, holdout_few = split_holdout(few, 0.25)
    assert sum(w for _, w in holdout_few) == 1 and sum(w for _, w in train_few) == 1
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_holdout(examples, 1.0)
