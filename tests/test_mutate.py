"""`make mutate`'s reading of mutmut's results: equivalent mutants named in pyproject.toml are
set apart with their reason and left out of the score."""

from collections import Counter

from stages.tools.mutate import equivalent_mutants, score, why_equivalent

RULE = {"function": "stages.split.x_check_enough", "changed": r"\[2\] \* len", "why": "equal weights share alike"}


def test_a_survivor_is_equivalent_only_for_its_function_and_its_change():
    added = ["-    quota = spread(n_test, [1] * len(counts))", "+    quota = spread(n_test, [2] * len(counts))"]
    assert why_equivalent("stages.split.x_check_enough__mutmut_9", added, [RULE]) == "equal weights share alike"
    assert why_equivalent("stages.split.x_split_examples__mutmut_9", added, [RULE]) is None  # another function
    assert why_equivalent("stages.split.x_check_enough__mutmut_8", ["-    x = [2] * len(a)", "+    x = None"], [RULE]) is None


def test_equivalent_mutants_leave_the_score():
    assert score(Counter(killed=8, survived=1, equivalent=1)) == 8 / 9
    assert score(Counter(killed=6, timeout=2, survived=1, **{"no tests": 1, "not checked": 5})) == 8 / 10


def test_the_project_lists_its_equivalent_mutants_with_a_reason():
    rules = equivalent_mutants()
    assert rules and all(rule["function"].count(".x_") == 1 and rule["changed"] and rule["why"] for rule in rules)
