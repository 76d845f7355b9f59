import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atommem_env.actions import (
    ADD_MEMORY,
    DELETE_MEMORY,
    FINAL_ANSWER,
    MODIFY_MEMORY,
    OP_KINDS,
    UPDATE_MEMORY,
    UPDATE_QUERY,
    Op,
    extract_boxed,
    parse_action,
    render_op,
    render_ops,
)
from atommem_env.errors import RenderError


def codes(text):
    return [e.code for e in parse_action(text).errors]


def test_all_six_tags_in_order_of_appearance():
    text = (
        "I will act.\n<update_memory>notes</update_memory> between <update_query>a; b</update_query>"
        "<add_memory>fact</add_memory><modify_memory>Memory 2: new</modify_memory>"
        "<delete_memory>Memory 1</delete_memory><final_answer>\\boxed{Paris}</final_answer>"
    )
    assert parse_action(text).ops == (
        Op(UPDATE_MEMORY, "notes"), Op(UPDATE_QUERY, "a; b"), Op(ADD_MEMORY, "fact"),
        Op(MODIFY_MEMORY, "new", 2), Op(DELETE_MEMORY, "", 1), Op(FINAL_ANSWER, "Paris"),
    )


def test_tags_are_case_insensitive_and_several_per_response():
    parsed = parse_action("<ADD_MEMORY>one</Add_Memory>\n<add_memory> two </add_memory>")
    assert parsed.ops == (Op(ADD_MEMORY, "one"), Op(ADD_MEMORY, "two")) and not parsed.errors


def test_tags_inside_think_are_not_executed():
    text = "<think>maybe <add_memory>draft</add_memory></think><add_memory>final</add_memory>"
    assert parse_action(text).ops == (Op(ADD_MEMORY, "final"),)
    # a response that continues a <think> opened in the prompt
    assert parse_action("draft <add_memory>no</add_memory></think><add_memory>yes</add_memory>").ops == (
        Op(ADD_MEMORY, "yes"),
    )


def test_unclosed_think_ignores_the_rest():
    parsed = parse_action("<add_memory>kept</add_memory><think>still thinking <add_memory>x</add_memory>")
    assert parsed.ops == (Op(ADD_MEMORY, "kept"),) and codes("<think>x") == ["unclosed_tag"]


def test_outermost_pairs_only():
    parsed = parse_action("<add_memory>outer <update_query>inner</update_query> text</add_memory>")
    assert parsed.ops == (Op(ADD_MEMORY, "outer <update_query>inner</update_query> text"),)
    nested = parse_action("<add_memory>a<add_memory>b</add_memory>c</add_memory>")
    assert nested.ops == (Op(ADD_MEMORY, "a<add_memory>b</add_memory>c"),)


def test_unknown_tags_are_ignored():
    assert parse_action("<note>x</note><add_memory>y</add_memory>").ops == (Op(ADD_MEMORY, "y"),)


@pytest.mark.parametrize(
    "text, code",
    [
        ("just prose", "no_action"),
        ("<note>x</note>", "no_action"),
        ("<add_memory>never closed", "unclosed_tag"),
        ("<add_memory>   </add_memory>", "empty_content"),
        ("<update_query></update_query>", "empty_content"),
        ("<final_answer>\\boxed{}</final_answer>", "empty_content"),
        ("<modify_memory>new text without rank</modify_memory>", "missing_memory_prefix"),
        ("<modify_memory>Memory 2:</modify_memory>", "empty_content"),
        ("<delete_memory>the second one</delete_memory>", "missing_memory_prefix"),
    ],
)
def test_malformed_pieces_become_errors(text, code):
    assert codes(text) == [code]


def test_valid_tags_still_run_beside_errors():
    parsed = parse_action("<add_memory>ok</add_memory><delete_memory>oops</delete_memory><update_query>q")
    assert parsed.ops == (Op(ADD_MEMORY, "ok"),)
    assert [e.code for e in parsed.errors] == ["missing_memory_prefix", "unclosed_tag"]


def test_empty_scratchpad_write_clears_it():
    assert parse_action("<update_memory>  </update_memory>").ops == (Op(UPDATE_MEMORY, ""),)


def test_rank_formats():
    assert parse_action("<modify_memory>memory 12：multi\nline</modify_memory>").ops == (
        Op(MODIFY_MEMORY, "multi\nline", 12),
    )
    assert parse_action("<delete_memory> Memory 3. </delete_memory>").ops == (Op(DELETE_MEMORY, "", 3),)


@pytest.mark.parametrize(
    "content, answer",
    [
        ("\\boxed{Paris}", "Paris"),
        ("It is \\boxed{a} no, \\boxed{b}", "b"),
        ("\\boxed{\\text{x}^{2}}", "\\text{x}^{2}"),
        ("plain answer ", "plain answer"),
        ("\\boxed{unbalanced", "\\boxed{unbalanced"),
    ],
)
def test_extract_boxed(content, answer):
    assert extract_boxed(content) == answer


def test_render_refuses_what_cannot_round_trip():
    for bad in (
        Op("shout", "x"), Op(ADD_MEMORY, " padded"), Op(ADD_MEMORY, "<add_memory>"), Op(ADD_MEMORY, ""),
        Op(MODIFY_MEMORY, "x"), Op(DELETE_MEMORY, "", 0), Op(DELETE_MEMORY, "text", 1),
        Op(FINAL_ANSWER, "a}b"), Op(ADD_MEMORY, "x", 2),
    ):
        with pytest.raises(RenderError):
            render_op(bad)


@settings(max_examples=300)
@given(st.text())
def test_parse_never_raises_on_arbitrary_text(text):
    parsed = parse_action(text)
    assert parsed.ops or parsed.errors
    assert all(op.kind in OP_KINDS for op in parsed.ops)


TAG_SOUP = st.lists(
    st.sampled_from(["<add_memory>", "</add_memory>", "<think>", "</think>", "<modify_memory>",
                     "</modify_memory>", "Memory 1:", "\\boxed{", "}", "<final_answer>",
                     "</final_answer>", "<delete_memory>", "text", " ", "\n"]) | st.text(max_size=5)
).map("".join)


@settings(max_examples=300)
@given(TAG_SOUP)
def test_parse_never_raises_on_tag_soup(text):
    parse_action(text)


CLEAN = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="<>{}\\"), min_size=1
).map(str.strip).filter(bool)


@st.composite
def ops(draw):
    kind = draw(st.sampled_from(OP_KINDS))
    if kind == DELETE_MEMORY:
        return Op(kind, "", draw(st.integers(1, 99)))
    text = draw(CLEAN)
    return Op(kind, text, draw(st.integers(1, 99)) if kind == MODIFY_MEMORY else None)


@settings(max_examples=300)
@given(st.lists(ops(), min_size=1, max_size=6))
def test_render_then_parse_round_trips(op_list):
    assert parse_action(render_ops(op_list)).ops == tuple(op_list)
