"""Champion / challenger promotion (docs/explanation/architecture.md, "Promotion"), in four steps.

- :func:`score` (:mod:`.scoring`) loads a session's registered versions and the champion and evaluates
  them on the same holdout cutouts, each score fingerprinted with its holdout galaxies;
- :func:`decide` (:mod:`.decision`) is pure: it ranks the versions by sigma_mad, judges the best against
  the champion with the policy (:func:`judge`, :mod:`.policy`) and returns a printable
  :class:`PromotionDecision`;
- :func:`record` (:mod:`.recording`) logs the decision on the session's run and tags the version;
- :func:`apply` (:mod:`.aliases`) moves the ``challenger`` alias, and ``champion`` when the decision promotes.

:func:`promote_session` (:mod:`.session`) runs them in that order. Run twice on the same inputs, the second
run changes nothing.
"""

from astrospect.promote.aliases import apply
from astrospect.promote.decision import Candidate, HoldoutMismatchError, PromotionDecision, decide
from astrospect.promote.policy import POLICY_METRICS, Tolerances, Verdict, judge
from astrospect.promote.recording import DECISION_FOLDER, record
from astrospect.promote.scoring import Scores, score
from astrospect.promote.session import PromotionResult, promote_session, session_versions

__all__ = [
    "DECISION_FOLDER",
    "POLICY_METRICS",
    "Candidate",
    "HoldoutMismatchError",
    "PromotionDecision",
    "PromotionResult",
    "Scores",
    "Tolerances",
    "Verdict",
    "apply",
    "decide",
    "judge",
    "promote_session",
    "record",
    "score",
    "session_versions",
]
