"""Win probability: a small logistic regression learned from closed leads, with the reasons behind every score.

Pure: no I/O and no clock. The services read the history and store the model; this module turns leads into
readable features, fits the weights, scores a lead and measures how good the scores are.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from operator import mul
from typing import Any, TypeVar

from leadflow.core.lead import CleanLead

# Bumped whenever features() changes meaning: a model trained on other features must not score new leads.
FEATURES_VERSION = 1
KIND = "logistic"
_MAX_VALUE = 40  # long free-text values (a source, a UTM tag) are cut so feature names stay readable

_BUDGET_BUCKETS = (
    (Decimal(1_000), "budget<1k"),
    (Decimal(10_000), "budget 1k-10k"),
    (Decimal(100_000), "budget 10k-100k"),
)
_MESSAGE_BUCKETS = ((50, "message under 50 chars"), (300, "message 50-299 chars"))

# Words that show intent to buy, in the three languages leads write in. Matched at the start of a word, so a
# stem covers its endings ("calculat" finds calculate and calculation).
_INTENT_WORDS = {
    "message mentions price": (
        "price", "pricing", "cost", "how much", "tariff",
        "ціна", "ціни", "ціну", "вартість", "вартості", "скільки коштує", "скільки буде", "прайс",
        "цена", "цены", "цену", "стоимость", "стоимости", "сколько стоит", "сколько будет", "тариф",
    ),
    "message asks for a quote": (
        "quote", "quotation", "estimate", "calculat", "proposal", "offer",
        "розрахувати", "розрахуйте", "розрахунок", "прорахувати", "прорахуйте", "кошторис", "комерційн", "кп",
        "рассчитать", "рассчитайте", "расчет", "расчёт", "просчитать", "просчитайте", "смета", "коммерческ",
    ),
    "message wants to buy": (
        "buy", "purchase", "order", "купити", "придбати", "замовити", "замовлення", "купить", "приобрести",
        "заказать", "заказ",
    ),
}  # fmt: skip
_INTENT_PATTERNS = tuple(
    (name, re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, words)) + ")", re.IGNORECASE))
    for name, words in _INTENT_WORDS.items()
)
_MIN_FACTOR = 0.01  # contributions smaller than this (in log-odds) explain nothing to a person
_TOP_FACTORS = 3


def _value(raw: object, *, upper: bool = False) -> str:
    text = " ".join(str(raw).split())[:_MAX_VALUE]
    return text.upper() if upper else text.casefold()


def features(lead: CleanLead) -> dict[str, float]:
    """The lead as named, one-hot features ("channel=ads", "budget≥100k", "message mentions price")."""
    out: dict[str, float] = {}

    def one_of(name: str, raw: object, *, upper: bool = False, missing: str | None = None) -> None:
        # A missing value is a feature of its own: "no source" can matter as much as any source.
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            out[missing or f"{name} not given"] = 1.0
        else:
            out[f"{name}={_value(raw, upper=upper)}"] = 1.0

    one_of("channel", lead.channel)
    one_of("source", lead.source)
    one_of("utm_source", lead.utm.get("utm_source"))
    one_of("utm_medium", lead.utm.get("utm_medium"))
    one_of("region", lead.region, upper=True)
    one_of("product", lead.product)
    one_of("language", lead.language)
    one_of("phone_type", lead.phone_type, missing="no phone")
    out["has e-mail" if lead.email else "no e-mail"] = 1.0
    out["has company" if lead.company else "no company"] = 1.0
    out[_budget_bucket(lead.budget)] = 1.0
    message = (lead.message or "").strip()
    if not message:
        out["no message"] = 1.0
    else:
        out[next((name for limit, name in _MESSAGE_BUCKETS if len(message) < limit), "message 300+ chars")] = 1.0
        for name, pattern in _INTENT_PATTERNS:
            if pattern.search(message):
                out[name] = 1.0
    return out


def _budget_bucket(budget: Decimal | None) -> str:
    if budget is None:
        return "budget not given"
    # Log-scale buckets: a deal of 50k and one of 60k behave alike, 5k and 500k do not.
    return next((name for limit, name in _BUDGET_BUCKETS if budget < limit), "budget≥100k")


@dataclass(frozen=True, slots=True)
class Factor:
    """One feature's push on a lead's score, in log-odds (+ raises the chance of winning, - lowers it)."""

    feature: str
    contribution: float

    @property
    def text(self) -> str:
        verb = "raised" if self.contribution > 0 else "lowered"
        return f"{self.feature} {verb} it ({self.contribution:+.2f})"

    def to_json(self) -> dict[str, Any]:
        return {"feature": self.feature, "contribution": self.contribution, "text": self.text}


@dataclass(frozen=True, slots=True)
class Prediction:
    probability: float
    factors: tuple[Factor, ...]  # the strongest pushes up, then the strongest pushes down

    def factors_json(self) -> list[dict[str, Any]]:
        """For the lead's win_factors column."""
        return [f.to_json() for f in self.factors]


@dataclass(frozen=True)
class WinModel:
    """A logistic regression over features(): log-odds of winning = bias + the sum of the lead's weights."""

    weights: dict[str, float]
    bias: float
    trained_on: int
    positive_rate: float
    l2: float = 1.0
    kind: str = KIND
    features_version: int = FEATURES_VERSION

    def logit(self, lead: CleanLead) -> float:
        weights = self.weights
        return self.bias + sum(weights.get(name, 0.0) * value for name, value in features(lead).items())

    def probability(self, lead: CleanLead) -> float:
        return _sigmoid(self.logit(lead))

    def predict(self, lead: CleanLead) -> Prediction:
        """The chance of winning and the top 3 features that pushed it up and the top 3 that pushed it down."""
        weights = self.weights
        pushes = [
            Factor(name, weights[name] * value) for name, value in features(lead).items() if name in weights
        ]  # features the model never saw in training push neither way
        logit = self.bias + sum(f.contribution for f in pushes)
        up = sorted((f for f in pushes if f.contribution >= _MIN_FACTOR), key=lambda f: (-f.contribution, f.feature))
        down = sorted((f for f in pushes if f.contribution <= -_MIN_FACTOR), key=lambda f: (f.contribution, f.feature))
        return Prediction(_sigmoid(logit), (*up[:_TOP_FACTORS], *down[:_TOP_FACTORS]))

    def strongest(self, count: int = 5) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        """The features with the largest positive and negative weights, for reports."""
        ranked = sorted(self.weights.items(), key=lambda item: (-item[1], item[0]))
        return [i for i in ranked[:count] if i[1] > 0], [i for i in reversed(ranked[-count:]) if i[1] < 0]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "features_version": self.features_version,
            "bias": self.bias,
            "weights": dict(sorted(self.weights.items())),
            "trained_on": self.trained_on,
            "positive_rate": self.positive_rate,
            "l2": self.l2,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WinModel:
        """Inverse of to_json; raises ValueError for a model of another kind or feature set."""
        if data.get("kind") != KIND:
            raise ValueError(f"model kind {data.get('kind')!r} is not {KIND!r}")
        if data.get("features_version") != FEATURES_VERSION:
            raise ValueError(
                f"model was trained on features version {data.get('features_version')}, this leadflow uses "
                f"{FEATURES_VERSION}: retrain it with `leadflow train-scoring`"
            )
        return cls(
            weights={str(k): float(v) for k, v in data["weights"].items()},
            bias=float(data["bias"]),
            trained_on=int(data["trained_on"]),
            positive_rate=float(data["positive_rate"]),
            l2=float(data["l2"]),
        )


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


# ---- training ---------------------------------------------------------------------------------------------


def train(
    examples: Sequence[tuple[CleanLead, bool]], *, l2: float = 1.0, max_iter: int = 300, min_count: int = 2
) -> WinModel:
    """Fit an L2-regularised logistic regression (the bias is not penalised).

    Full-batch L-BFGS on the exact penalised log-loss, so the result depends only on the examples, not on a
    seed or their order beyond float rounding. `l2` is the penalty on the summed loss: a prior that keeps
    each weight near 0 unless many leads say otherwise. Features seen on fewer than `min_count` leads get no
    weight (one lucky lead from a new source should not move the next one).
    """
    if l2 <= 0:
        raise ValueError("l2 must be positive: without it a feature seen only on won leads gets an endless weight")
    labels = [bool(won) for _, won in examples]
    positives = sum(labels)
    if positives == 0 or positives == len(labels):
        raise ValueError("training needs both won and lost leads")
    rows = [features(lead) for lead, _ in examples]
    counts: dict[str, int] = {}
    for row in rows:
        for name in row:
            counts[name] = counts.get(name, 0) + 1
    names = sorted(name for name, count in counts.items() if count >= min_count)
    index = {name: i for i, name in enumerate(names)}

    # Leads with identical features are one pattern with a count of leads and of wins: fewer terms to sum.
    patterns: dict[tuple[tuple[int, float], ...], list[int]] = {}
    for row, won in zip(rows, labels, strict=True):
        key = tuple(sorted((index[n], v) for n, v in row.items() if n in index))
        tally = patterns.setdefault(key, [0, 0])
        tally[0] += 1
        tally[1] += won
    data = _Data(patterns, len(names), l2)
    theta = _lbfgs(data, positives / len(labels), max_iter)
    return WinModel(
        weights={name: theta[i] for i, name in enumerate(names)},
        bias=theta[-1],
        trained_on=len(labels),
        positive_rate=positives / len(labels),
        l2=l2,
    )


class _Data:
    """The training set as sparse patterns, with the penalised log-loss and its gradient."""

    def __init__(self, patterns: Mapping[tuple[tuple[int, float], ...], list[int]], dim: int, l2: float) -> None:
        self.dim, self.l2 = dim, l2
        self.rows = [([i for i, _ in key], [v for _, v in key]) for key in patterns]
        self.n = [float(t[0]) for t in patterns.values()]
        self.k = [float(t[1]) for t in patterns.values()]
        # Column view: the gradient of one weight is a sum over the patterns that have its feature.
        cols: list[tuple[list[int], list[float]]] = [([], []) for _ in range(dim)]
        for r, (idx, vals) in enumerate(self.rows):
            for i, v in zip(idx, vals, strict=True):
                cols[i][0].append(r)
                cols[i][1].append(v)
        self.cols = cols

    def loss_and_grad(self, theta: list[float]) -> tuple[float, list[float]]:
        bias, weight = theta[-1], theta.__getitem__
        loss = 0.0
        residual = []
        for (idx, vals), n, k in zip(self.rows, self.n, self.k, strict=True):
            z = bias + sum(map(mul, map(weight, idx), vals))
            # Stable log(1 + e^z) and sigmoid for any z.
            if z > 0:
                e = math.exp(-z)
                loss += n * (z + math.log1p(e)) - k * z
                residual.append(n / (1.0 + e) - k)
            else:
                e = math.exp(z)
                loss += n * math.log1p(e) - k * z
                residual.append(n * e / (1.0 + e) - k)
        r = residual.__getitem__
        grad = [sum(map(mul, map(r, rows), vals)) + self.l2 * theta[j] for j, (rows, vals) in enumerate(self.cols)]
        grad.append(sum(residual))
        loss += 0.5 * self.l2 * math.fsum(w * w for w in theta[:-1])
        return loss, grad


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(map(mul, a, b))


def _lbfgs(data: _Data, rate: float, max_iter: int, memory: int = 10) -> list[float]:
    """Minimise the loss from zero weights and the bias at the base rate; stops when the gradient vanishes."""
    theta = [0.0] * data.dim + [math.log(rate / (1.0 - rate))]
    loss, grad = data.loss_and_grad(theta)
    tolerance = 1e-7 * max(1.0, sum(data.n))  # the loss is a sum over leads, so is its gradient
    history: list[tuple[list[float], list[float], float]] = []  # (s, y, 1 / y·s)
    for _ in range(max_iter):
        if max(map(abs, grad)) <= tolerance:
            break
        direction = _two_loop(grad, history)
        slope = _dot(grad, direction)
        if slope >= 0:  # not a descent direction (rounding): start again from steepest descent
            history.clear()
            direction = [-g for g in grad]
            slope = _dot(grad, direction)
        if not history:
            # First step: scale steepest descent so it moves about one unit of log-odds.
            scale = 1.0 / max(1.0, math.sqrt(-slope))
            direction = [d * scale for d in direction]
            slope *= scale
        step = 1.0
        while True:
            candidate = [t + step * d for t, d in zip(theta, direction, strict=True)]
            new_loss, new_grad = data.loss_and_grad(candidate)
            if new_loss <= loss + 1e-4 * step * slope:  # Armijo: enough decrease
                break
            step *= 0.5
            if step < 1e-10:
                return theta  # no further progress is possible in floating point
        s = [a - b for a, b in zip(candidate, theta, strict=True)]
        y = [a - b for a, b in zip(new_grad, grad, strict=True)]
        sy = _dot(s, y)
        if sy > 1e-12:
            history.append((s, y, 1.0 / sy))
            if len(history) > memory:
                history.pop(0)
        done = loss - new_loss <= 1e-12 * max(1.0, abs(loss))
        theta, loss, grad = candidate, new_loss, new_grad
        if done:
            break
    return theta


def _two_loop(grad: list[float], history: list[tuple[list[float], list[float], float]]) -> list[float]:
    """-H·grad for the L-BFGS estimate H of the inverse Hessian."""
    q = list(grad)
    alphas = []
    for s, y, rho in reversed(history):
        alpha = rho * _dot(s, q)
        alphas.append(alpha)
        q = [qi - alpha * yi for qi, yi in zip(q, y, strict=True)]
    if history:
        s, y, _ = history[-1]
        gamma = _dot(s, y) / _dot(y, y)
        q = [qi * gamma for qi in q]
    for (s, y, rho), alpha in zip(history, reversed(alphas), strict=True):
        beta = rho * _dot(y, q)
        q = [qi + (alpha - beta) * si for qi, si in zip(q, s, strict=True)]
    return [-qi for qi in q]


# ---- quality ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CalibrationBin:
    """Leads whose predicted probability fell in [lo, hi): what was predicted and what happened."""

    lo: float
    hi: float
    predicted_mean: float
    observed_rate: float
    count: int


@dataclass(frozen=True)
class Metrics:
    auc: float  # chance that a random won lead is scored above a random lost one; 0.5 is guessing
    brier: float  # mean squared error of the probability; lower is better
    calibration: tuple[CalibrationBin, ...]  # the non-empty ones of ten equal-width bins
    n: int
    positives: int

    @property
    def brier_baseline(self) -> float:
        """The Brier score of always saying the win rate: what a useless model gets."""
        rate = self.positives / self.n if self.n else 0.0
        return rate * (1.0 - rate)

    @property
    def calibration_error(self) -> float:
        """How far predictions are from what happened, averaged over leads (expected calibration error)."""
        total = sum(b.count for b in self.calibration)
        return sum(b.count * abs(b.predicted_mean - b.observed_rate) for b in self.calibration) / max(total, 1)

    def to_json(self) -> dict[str, Any]:
        return {
            "auc": self.auc, "brier": self.brier, "n": self.n, "positives": self.positives,
            "calibration": [
                {"lo": b.lo, "hi": b.hi, "predicted_mean": b.predicted_mean, "observed_rate": b.observed_rate,
                 "count": b.count}
                for b in self.calibration
            ],
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Metrics:
        bins = tuple(CalibrationBin(**b) for b in data["calibration"])
        return cls(float(data["auc"]), float(data["brier"]), bins, int(data["n"]), int(data["positives"]))


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Exact ROC AUC by ranks (Mann-Whitney U); tied scores count half, as in a pairwise count."""
    positives = sum(1 for y in labels if y)
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        raise ValueError("ROC AUC needs both won and lost leads")
    order = sorted(range(len(scores)), key=scores.__getitem__)
    rank_sum = 0.0
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and scores[order[end + 1]] == scores[order[start]]:
            end += 1
        average_rank = (start + end) / 2 + 1  # ranks are 1-based; ties share their mean rank
        rank_sum += average_rank * sum(1 for i in order[start : end + 1] if labels[i])
        start = end + 1
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def calibration_table(probabilities: Sequence[float], labels: Sequence[bool], bins: int = 10) -> tuple[
    CalibrationBin, ...
]:  # fmt: skip
    """A reliability table: equal-width probability bins, the empty ones left out."""
    tally = [[0.0, 0, 0] for _ in range(bins)]  # sum of predictions, leads, wins
    for p, y in zip(probabilities, labels, strict=True):
        b = min(int(p * bins), bins - 1)
        tally[b][0] += p
        tally[b][1] += 1
        tally[b][2] += int(y)
    return tuple(
        CalibrationBin(i / bins, (i + 1) / bins, total / count, wins / count, int(count))
        for i, (total, count, wins) in enumerate(tally)
        if count
    )


def evaluate(model: WinModel, examples: Sequence[tuple[CleanLead, bool]]) -> Metrics:
    """How well the model ranks and how honest its probabilities are, on leads it was not trained on."""
    probabilities = [model.probability(lead) for lead, _ in examples]
    labels = [bool(won) for _, won in examples]
    brier = math.fsum((p - y) ** 2 for p, y in zip(probabilities, labels, strict=True)) / len(labels)
    return Metrics(
        auc=roc_auc(probabilities, labels),
        brier=brier,
        calibration=calibration_table(probabilities, labels),
        n=len(labels),
        positives=sum(labels),
    )


T = TypeVar("T")


def split_holdout(
    examples: Sequence[tuple[T, bool]], fraction: float = 0.25, seed: int = 0
) -> tuple[list[tuple[T, bool]], list[tuple[T, bool]]]:
    """(train, holdout): a seeded random `fraction` of the won and of the lost leads is held out.

    Stratified, so both parts keep the win rate and both classes whenever a class has two leads or more.
    """
    if not 0 < fraction < 1:
        raise ValueError("the held-out fraction must be between 0 and 1")
    rng = random.Random(seed)
    held: set[int] = set()
    for outcome in (True, False):
        members = [i for i, (_, won) in enumerate(examples) if bool(won) is outcome]
        take = round(len(members) * fraction)
        if len(members) >= 2:
            take = min(max(take, 1), len(members) - 1)
        held.update(rng.sample(members, take))
    train_part = [e for i, e in enumerate(examples) if i not in held]
    holdout = [e for i, e in enumerate(examples) if i in held]
    return train_part, holdout
