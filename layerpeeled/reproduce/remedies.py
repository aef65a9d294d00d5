"""The imbalance remedies compared by ``lpm reproduce remedies``: what each changes in training and
in the model, and which remedy a training configuration applies.

Oversampling and re-weighting rebalance fully (w_r = R, the usual practice): the model then sees
balanced counts (SPEC §2.7). The losses take the parameters of their papers' common settings; the
fixed ETF classifier (Yang et al. 2022) trains with cross-entropy.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..networks.config import DEFAULT_CLASSIFIER, DEFAULT_LOSS


@dataclass(frozen=True)
class Remedy:
    label: str
    loss: str = DEFAULT_LOSS
    classifier: str = DEFAULT_CLASSIFIER
    rebalance: str | None = None  # "wr" (oversampling) or "reweight": a factor R on the minority
    training_fields: dict = field(default_factory=dict)

    def training(self, R: float) -> dict:
        """The training-configuration fields of this remedy at imbalance ratio R."""
        out = {}
        if self.loss != DEFAULT_LOSS:
            out["loss"] = self.loss
        if self.classifier != DEFAULT_CLASSIFIER:
            out["classifier"] = self.classifier
        if self.rebalance:
            out[self.rebalance] = int(round(R))
        return out

    def model_counts(self, counts, KA: int, R: float):
        """The class counts the model sees (rebalancing multiplies the minority's by R)."""
        return [n * R if self.rebalance and k >= KA else n for k, n in enumerate(counts)]


REMEDIES = {
    "cross-entropy": Remedy("cross-entropy (no remedy)"),
    "oversample": Remedy("oversampling, w_r = R", rebalance="wr"),
    "reweight": Remedy("loss re-weighting, w_r = R", rebalance="reweight"),
    "la": Remedy("logit adjustment (la, tau = 1)", loss="la:tau=1"),
    "vs": Remedy("vector scaling (vs, gamma = 0.2, tau = 1)", loss="vs:gamma=0.2,tau=1"),
    "cdt": Remedy("class-dependent temperature (cdt, gamma = 0.3)", loss="cdt:gamma=0.3"),
    "ldam": Remedy("LDAM margins (ldam, C = 0.5)", loss="ldam:C=0.5"),
    "ls": Remedy("label smoothing (ls, eps = 0.1)", loss="ls:eps=0.1"),
    "etf": Remedy("fixed simplex-ETF classifier", classifier="etf"),
}


def remedy_of(config: dict) -> str:
    """Which of :data:`REMEDIES` a training configuration (JSON) applies; ValueError for none or several."""
    found = [name for name, r in REMEDIES.items()
             if config.get("loss", DEFAULT_LOSS) == r.loss and config.get("classifier", DEFAULT_CLASSIFIER) == r.classifier
             and all((config.get(f, 1) > 1) == (r.rebalance == f) for f in ("wr", "reweight"))]
    if len(found) != 1:
        raise ValueError(f"configuration applies no single remedy of {list(REMEDIES)}: loss {config.get('loss')}, "
                         f"classifier {config.get('classifier')}, wr {config.get('wr')}, reweight {config.get('reweight')}")
    return found[0]
