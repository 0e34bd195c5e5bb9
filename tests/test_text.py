"""The shared text helpers: one line, clipped; the JSON object in a model's answer."""

import json

from research_agent.text import clip, first_json_object, first_line, last_line, one_line, squash


def test_first_json_object_finds_the_object_wherever_the_model_put_it():
    plan = {"hypotheses": [{"title": "Block the loops"}], "note": "a } and a { in a string"}
    assert first_json_object(json.dumps(plan)) == plan
    assert first_json_object("Sure:\n```json\n" + json.dumps(plan) + "\n```\nbye") == plan
    assert first_json_object('<think>{broken, {"a": 1}</think> ' + json.dumps(plan)) == {"a": 1}  # the first whole one
    assert first_json_object('{"a": 1} then ' + json.dumps(plan), key="hypotheses") == plan  # the keyed one wins
    assert first_json_object('{"a": 1} and {"b": 2}', key="hypotheses") == {"a": 1}  # else the first
    assert first_json_object('[{"inner": true}]') == {"inner": True}  # an object inside a list still counts
    assert first_json_object('{"outer": {"inner": 1}}') == {"outer": {"inner": 1}}  # the outer, not the nested one


def test_first_json_object_is_none_when_there_is_none():
    for text in ("", None, "no braces", "{", "{not json}", '{"a": 1', "[1, 2]", "}{"):
        assert first_json_object(text) is None


def test_one_line_squashes_and_clips_with_an_ellipsis():
    assert squash("  a\n\tb  c \n") == "a b c"
    assert one_line("a\nb", 10) == "a b"
    assert one_line("x" * 12, 10) == "x" * 9 + "…" and len(one_line("x" * 12, 10)) == 10
    assert clip("abc", None) == "abc" and clip("abc", 3) == "abc" and clip("abcd", 3) == "ab…"
    assert one_line(ValueError("boom\nagain")) == "boom again"


def test_first_and_last_line():
    text = "\n  \n first \nmiddle\n last  \n\n"
    assert first_line(text) == "first" and last_line(text) == "last"
    assert first_line("") == last_line(" \n ") == ""


def test_error_lines_are_plain_single_lines_or_the_class_name():
    from research_agent.text import error_line, plain

    assert plain("\x1b[33mPool 'x'\x1b[0m busy\x1b[?25l") == "Pool 'x' busy"
    assert error_line(RuntimeError("\x1b[31mno\n  capacity\x1b[0m")) == "no capacity"
    assert error_line(ValueError()) == "ValueError" and error_line(KeyError("")) == "''"
    assert error_line(OSError("x" * 50), 10) == "x" * 9 + "…"


def test_cut_at_word_ends_on_a_whole_word():
    from research_agent.text import cut_at_word

    assert cut_at_word("Block the loops\n for cache reuse", 40) == "Block the loops for cache reuse"
    assert cut_at_word("Block the loops, for cache reuse", 18) == "Block the loops…"  # no dangling comma
    assert cut_at_word("x" * 30, 10) == "x" * 9 + "…"  # one long word: cut inside it
    assert len(cut_at_word("word " * 40, 48)) <= 48
