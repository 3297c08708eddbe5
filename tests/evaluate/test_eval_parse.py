"""The letter parser: an adversarial corpus with hand-checked answers, and invariants."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsr.evaluate.parse import PARSER_VERSION, TIERS, Parse, parse_letter

OPTS = {"A": "left", "B": "right", "C": "not moving", "D": "moving towards the camera"}

# (reply, expected letter or None, expected tier)
CORPUS = [
    ("C", "C", "last_line"),
    ("C.", "C", "last_line"),
    ("(C)", "C", "last_line"),
    ("c", "C", "last_line"),
    ("c)", "C", "last_line"),
    ("C: not moving", "C", "last_line"),
    ("B. right", "B", "last_line"),
    ("**B**", "B", "last_line"),
    ("（C）", "C", "last_line"),                     # full-width brackets
    ("Ｃ", "C", "last_line"),                        # full-width letter
    ("【B】", "B", "last_line"),                      # CJK lenticular brackets
    ("\u200bD\u200b", "D", "last_line"),             # zero-width characters
    ("<answer>D</answer>", "D", "tag"),
    ("<answer> (b) </answer>", "B", "tag"),
    ("\\boxed{C}", "C", "tag"),
    ("The final answer is $\\boxed{\\text{A}}$.", "A", "tag"),
    ("`B`", "B", "tag"),
    ("The answer is C.", "C", "phrase"),
    ("A is wrong, the answer is C", "C", "phrase"),
    ("Answer: (b)", "B", "phrase"),
    ("Final Answer: A because it moves to the left", "A", "phrase"),
    ("Option D is correct.", "D", "phrase"),
    ("Based on the frames, B is the best choice.", "B", "phrase"),
    ("I think the correct option is D, not A.", "D", "phrase"),
    ("答案是C", "C", "phrase"),
    ("<think>The car could be A... but it turns. Answer: A</think>\nB", "B", "last_line"),
    ("<think>Let me think. A? No, B.</think><answer>C</answer>", "C", "tag"),
    ("Reasoning about the motion...</think>\nD", "D", "last_line"),   # lone closing tag
    ("<think>The answer is A, probably, but let me check the", None, "invalid"),  # truncated reasoning
    ("A. left\nB. right\nC. not moving\nD. moving towards the camera", None, "invalid"),  # echoed options
    ("A. left\nB. right\nC. not moving\nD. moving towards the camera\nAnswer: B", "B", "phrase"),
    ("A\n\nExplanation: the car moves right.", "A", "last_line"),
    ("A car appears near the camera.", None, "invalid"),  # the article "A"
    ("The answer is a car.", None, "invalid"),
    ("I'm sorry, but I can't determine that from these frames.", None, "invalid"),   # refusal
    ("The object is moving towards the", None, "invalid"),                          # truncation
    ("A or C", None, "invalid"),                                                     # two answers
    ("B/C", None, "invalid"),
    ("It is not moving.", "C", "option_text"),
    ("It is moving towards the camera", "D", "option_text"),  # "moving" inside D's text, not C's
    ("left or right", None, "invalid"),                       # two option texts
    ("", None, "invalid"),
    ("E", None, "invalid"),                                   # not one of the item's letters
    ("Answer: E", None, "invalid"),
    ("About", None, "invalid"),
    ("Because of the camera motion", None, "invalid"),
    ("CB", None, "invalid"),                                  # two letters glued (a real Qwen reply)
    # several letters named: invalid in every tier (issue 15, item 7)
    ("A\nB\nC", None, "invalid"),                               # was parsed as C and credited
    ("A\nB\nC\nD", None, "invalid"),
    ("(A)\n(C)", None, "invalid"),
    ("A B C", None, "invalid"),
    ("A, C", None, "invalid"),
    ("A; B", None, "invalid"),
    ("A. B.", None, "invalid"),
    ("<answer>A</answer><answer>C</answer>", None, "invalid"),
    ("\\boxed{A} \\boxed{C}", None, "invalid"),
    ("`A` or `C`", None, "invalid"),
    ("Answer: A\nAnswer: C", None, "invalid"),
    ("The answer is A. Wait, the answer is C.", None, "invalid"),   # a self-correction states two answers
    ("The answer is A and B", None, "invalid"),
    ("Answer: A or C", None, "invalid"),
    ("Answer: B\nC", None, "invalid"),                            # a phrase contradicted by a lone line
    ("<answer>B</answer>\nC", None, "invalid"),                   # a tag contradicted by a lone line
    ("Option `A` is wrong; the answer is `C`.", None, "invalid"),
    ("C is wrong", None, "invalid"),                              # a sentence about C, not a choice of C
    # ... but one letter stated more than once, or other letters only argued about, still count
    ("B\nB", "B", "last_line"),
    ("The answer is C.\nC", "C", "phrase"),
    ("Option A is plausible, but option C is correct.", "C", "phrase"),
    ("B\nC is wrong", "B", "last_line"),
    ("B. A car turns left.", "B", "last_line"),                  # the "A" of "A car" is the article
    ("A. left\nB. right\nC", "C", "last_line"),                 # an echoed list, then the answer
    ("C because it stops", "C", "last_line"),
    ("答案是C\n选项A", "C", "phrase"),                             # a statement beats a mention
]


@pytest.mark.parametrize(("reply", "letter", "tier"), CORPUS)
def test_adversarial_corpus(reply: str, letter: str | None, tier: str) -> None:
    got = parse_letter(reply, OPTS)
    assert (got.letter, got.tier) == (letter, tier), reply


def test_letters_restricted_to_the_item() -> None:
    two = {"A": "yes", "B": "no"}
    assert parse_letter("C", two).letter is None
    assert parse_letter("The answer is C", two).letter is None
    assert parse_letter("B", two).letter == "B"
    assert parse_letter(None, two).tier == "invalid"


def test_duplicate_option_text_is_ambiguous() -> None:
    dup = {"A": "left", "B": "right", "C": "away", "D": "away"}
    assert parse_letter("away", dup).letter is None


def test_version_and_tiers_declared() -> None:
    assert PARSER_VERSION and set(TIERS) >= {"tag", "phrase", "last_line", "lone_letter", "option_text", "invalid"}


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_never_raises_and_stays_in_letters(reply: str) -> None:
    got = parse_letter(reply, OPTS)
    assert got.tier in TIERS
    assert (got.letter is None) == (got.tier == "invalid")
    assert got.letter is None or got.letter in OPTS
    assert parse_letter(reply, OPTS) == got  # deterministic


@settings(max_examples=100, deadline=None)
@given(st.sampled_from("ABCD"), st.sampled_from(["{}", "({})", "{}.", "Answer: {}", "<answer>{}</answer>",
                                               "\\boxed{{{}}}", "The answer is {}.", "{}\n"]),
       st.text(alphabet=" \n\t", max_size=3))
def test_wrapped_letter_is_found(letter: str, wrapper: str, pad: str) -> None:
    assert parse_letter(pad + wrapper.format(letter) + pad, OPTS).letter == letter


ANSWER_WRAPPERS = ["{}", "({})", "{}.", "[{}]", "Answer: {}", "<answer>{}</answer>", "\\boxed{{{}}}",
                   "The answer is {}.", "Final answer: ({})"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from("ABCD"), min_size=2, max_size=4, unique=True),
       st.lists(st.sampled_from(ANSWER_WRAPPERS), min_size=4, max_size=4),
       st.sampled_from(["\n", "\n\n", " \n"]))
def test_several_stated_letters_are_invalid(letters: list[str], wrappers: list[str], sep: str) -> None:
    """Each line states a different letter, in any mix of the answer forms: no tier may pick one."""
    reply = sep.join(w.format(x) for w, x in zip(wrappers, letters, strict=False))
    assert parse_letter(reply, OPTS) == Parse(None, "invalid"), reply


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from("ABCD"), min_size=2, max_size=4, unique=True),
       st.sampled_from([" ", ", ", " or ", "/", " and ", "; "]), st.sampled_from(["{}", "Answer: {}", "({})"]))
def test_a_list_of_letters_on_one_line_is_invalid(letters: list[str], joiner: str, wrapper: str) -> None:
    reply = wrapper.format(joiner.join(letters))
    assert parse_letter(reply, OPTS).letter is None, reply
