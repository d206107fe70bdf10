"""Why an answer is ``unknown``: the reasons a prediction names and the one rule that decides them.

A refused image is not one kind of thing. A deployer who sees many ``unknown`` answers needs to
know whether the camera sent blank frames (``no_brain_found``), whether the scans are simply
unlike the training data (``out_of_domain``: domain score below the contract's threshold), or
whether they are real MRI slices in a view the model was never validated on
(``view_not_supported``: the model's view gate negated the domain score, which the Mahalanobis
score itself never makes negative). Only the last can be fixed by sending other slices of the
same scan, or, knowingly, by accepting every view (``accept_all_views``: the score's magnitude
is then compared with the threshold, as for a model without a gate).

The rule lives here, apart from the classifier, so the device runtime and the desktop's external
evaluation (which runs the same artifacts through other interpreters) decide ``in_domain`` and
the reason identically.
"""

from __future__ import annotations

from dataclasses import dataclass

#: No brain in the image, or a degenerate input (``crop.degenerate``): never in domain.
NO_BRAIN_FOUND = "no_brain_found"
#: The model's view gate refused the slice's view (a negative domain score).
VIEW_NOT_SUPPORTED = "view_not_supported"
#: The domain score is below the contract's threshold.
OUT_OF_DOMAIN = "out_of_domain"
#: Every reason, in the order reports list them.
REASONS = (NO_BRAIN_FOUND, VIEW_NOT_SUPPORTED, OUT_OF_DOMAIN)


@dataclass(frozen=True)
class DomainRule:
    """A model contract's refusal settings.

    Attributes:
        threshold: lowest ``domain_score`` still in domain.
        view_gate: the model carries a view gate (a negative score = view not supported); False
            for older models, whose scores are never negative.
        accept_all_views: the user's choice to answer in every view: a gated slice is judged by
            ``abs(domain_score)`` like any other (its answer then comes from a view the model's
            validation did not cover).
    """

    threshold: float
    view_gate: bool = False
    accept_all_views: bool = False

    @classmethod
    def of(cls, contract, accept_all_views: bool = False) -> "DomainRule | None":
        """The rule of an :class:`edge_runtime.contract.Contract`; None without a contract or
        without a domain check (then nothing decides ``in_domain``)."""
        if contract is None or contract.domain_threshold is None:
            return None
        return cls(contract.domain_threshold, contract.view_gate, accept_all_views)


def verdict(no_brain_found: bool, domain_score: float | None, rule: DomainRule | None
            ) -> tuple[bool | None, str | None]:
    """``(in_domain, unknown_reason)`` of one image.

    ``in_domain`` is False for a degenerate input whatever the model (the runtime's behaviour
    since before contracts), None when there is no rule or no domain score, else
    ``domain_score >= rule.threshold`` (with a view gate, a negative score is a view refusal
    unless the rule accepts all views). ``unknown_reason`` is None exactly when ``in_domain``
    is not False (the label is a real answer).
    """
    if no_brain_found:
        return False, NO_BRAIN_FOUND
    if rule is None or domain_score is None:
        return None, None
    if rule.view_gate and domain_score < 0:
        if not rule.accept_all_views:
            return False, VIEW_NOT_SUPPORTED
        domain_score = -domain_score
    if domain_score >= rule.threshold:
        return True, None
    return False, OUT_OF_DOMAIN
