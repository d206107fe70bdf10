"""The "answered" section of an evaluation: coverage and answered-only metrics beside the
all-images ones, on hand-made scored sets whose numbers can be counted by eye."""

from __future__ import annotations

import pytest

from edge_runtime.evaluate import EvaluationConfig, ScoredImage, markdown_summary, summarise
from edge_runtime.metrics import proportion


def _img(i: int, cls: str, label: str, score: float, in_domain: bool | None, reason: str | None = None):
    return ScoredImage(f"{cls}/{i}.jpg", label, cls, score, in_domain, reason)


# glioma: 4 images, 3 answered (2 right, 1 wrong), 1 refused by the view gate (a hit it would have been)
# notumor: 5 images, 2 answered (both right), 3 refused (1 no brain, 2 out of domain; all false alarms)
IMAGES = [
    _img(0, "glioma", "yes", 0.9, True), _img(1, "glioma", "yes", 0.8, True), _img(2, "glioma", "yes", 0.2, True),
    _img(3, "glioma", "yes", 0.95, False, "view_not_supported"),
    _img(4, "notumor", "no", 0.1, True), _img(5, "notumor", "no", 0.3, True),
    _img(6, "notumor", "no", 0.7, False, "no_brain_found"),
    _img(7, "notumor", "no", 0.6, False, "out_of_domain"), _img(8, "notumor", "no", 0.9, False, "out_of_domain"),
]


def test_coverage_overall_and_per_class_with_refusals_by_reason():
    a = summarise(IMAGES)["answered"]
    assert a["n"] == 9 and a["n_answered"] == 5
    assert a["coverage"] == proportion(5, 9).to_dict()
    assert a["coverage_yes"]["k"] == 3 and a["coverage_no"]["k"] == 2
    assert a["refused"] == {"no_brain_found": 1, "view_not_supported": 1, "out_of_domain": 2}
    g, n = a["per_original_class"]["glioma"], a["per_original_class"]["notumor"]
    assert g["n"] == 4 and g["answered"] == proportion(3, 4).to_dict() and g["refused"]["view_not_supported"] == 1
    assert n["answered"]["k"] == 2 and n["refused"] == {"no_brain_found": 1, "view_not_supported": 0, "out_of_domain": 2}
    lo, hi = a["coverage"]["ci95"]
    assert lo < 5 / 9 < hi


def test_answered_only_metrics_beside_unchanged_all_images_metrics():
    m = summarise(IMAGES)
    # every image, as before: 3 of 4 tumours above 0.5, 2 of 5 normals below
    assert (m["sensitivity"]["k"], m["sensitivity"]["n"]) == (3, 4)
    assert (m["specificity"]["k"], m["specificity"]["n"]) == (2, 5)
    a = m["answered"]
    assert (a["sensitivity"]["k"], a["sensitivity"]["n"]) == (2, 3)
    assert (a["specificity"]["k"], a["specificity"]["n"]) == (2, 2)
    assert a["confusion"] == {"tp": 2, "fn": 1, "tn": 2, "fp": 0}
    assert a["balanced_accuracy"]["value"] == pytest.approx((2 / 3 + 1) / 2)
    assert {k: v for k, v in m.items() if k != "answered"} == summarise(
        [ScoredImage(i.path, i.label, i.original_class, i.score) for i in IMAGES])


def test_section_absent_without_domain_information():
    plain = [ScoredImage(i.path, i.label, i.original_class, i.score) for i in IMAGES]
    assert "answered" not in summarise(plain)
    assert "answered" not in summarise([_img(0, "yes", "yes", 0.9, None), _img(1, "no", "no", 0.2, None)])
    assert not any("Answered" in line for line in markdown_summary(summarise(plain)))


def test_image_without_a_verdict_counts_as_answered():
    # a model without a contract: only a degenerate input is refused, the rest get real labels
    m = summarise([_img(0, "yes", "yes", 0.9, None), _img(1, "no", "no", 0.6, False, "no_brain_found"),
                   _img(2, "no", "no", 0.2, None)])
    assert m["answered"]["n_answered"] == 2 and m["answered"]["specificity"]["n"] == 1


def test_nothing_answered_gives_undefined_metrics_not_zeros():
    m = summarise([_img(0, "yes", "yes", 0.9, False, "out_of_domain"), _img(1, "no", "no", 0.1, False)],
                  EvaluationConfig())
    a = m["answered"]
    assert a["coverage"]["value"] == 0 and a["sensitivity"]["value"] is None and a["balanced_accuracy"]["value"] is None
    assert a["refused"]["unspecified"] == 1  # a refusal whose reason the caller did not give
    assert any("n/a" in line for line in markdown_summary(m))


def test_markdown_shows_the_coverage_table_and_answered_only_metrics():
    lines = markdown_summary(summarise(IMAGES))
    text = "\n".join(lines)
    assert "| class | label | images | answered (95 % CI) | refused: no brain found | refused: view not supported " \
           "| refused: out of domain |" in text
    assert any(line.startswith("| glioma | yes | 4 | 75.0 % (") and line.endswith("3/4 | 0 | 1 | 0 |") for line in lines)
    assert any(line.startswith("| notumor | no | 5 | 40.0 % (") and line.endswith("2/5 | 1 | 0 | 2 |") for line in lines)
    assert any(line.startswith("| all | | 9 | 55.6 % (") for line in lines)
    assert any(line.startswith("| sensitivity | 66.7 % (") and line.endswith("| 2/3 |") for line in lines)
    assert any(line.startswith("| specificity | 100.0 % (") and line.endswith("| 2/2 |") for line in lines)
