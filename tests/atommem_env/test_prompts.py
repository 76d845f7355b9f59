from atommem_env import prompts


def view(**kw):
    base = dict(scratchpad="notes", query="q1", memories=["fact a", "fact b"], reads=1, max_reads=3)
    return prompts.PromptView(**{**base, **kw})


def test_reading_message_has_the_paper_sections_in_order():
    text = prompts.render_reading(["Q one?", "Q two?"], "CHUNK TEXT", view())
    markers = [
        "This is the question you need to solve:\nQ one?\nQ two?",
        "This is your short term memory from the previous turn.\nnotes",
        "This is current query to retrieve memory from database:\nq1",
        "This is current memory related to the query:\nMemory 1: fact a\nMemory 2: fact b",
        "Tips:",
        "This is the article:\nCHUNK TEXT",
        "Now you should follow this strategy to manage memory:",
        "You have update query **1** times, exceed **3** will lead to the task failure.",
    ]
    positions = [text.index(m) for m in markers]
    assert positions == sorted(positions)
    assert "Feedback" not in text


def test_answering_message_asks_for_boxed_answer_and_allows_skipping():
    text = prompts.render_answering("Who?", view(memories=[]))
    assert "problem:\nWho?" in text and prompts.NO_MEMORY in text
    assert "<final_answer>\\boxed{Jacob}</final_answer>" in text
    assert "Do not update memory in this stage!" in text and "don't know" in text


def test_feedback_and_hidden_sections():
    text = prompts.render_reading(["Q?"], "c", view(scratchpad=None, memories=None, feedback="- bad tag"))
    assert "short term memory" not in text and "current query" not in text
    assert text.rstrip().endswith("Feedback on your previous response:\n- bad tag")


def test_braces_in_content_are_not_format_fields():
    text = prompts.render_reading(["{x}?"], "a {chunk} with {braces}", view(scratchpad="{}"))
    assert "a {chunk} with {braces}" in text and "{x}?" in text


def test_system_prompt_notes_disabled_features():
    assert prompts.render_system() == prompts.SYSTEM_PROMPT
    assert "<delete_memory> is disabled" in prompts.render_system(["delete_memory"])


def test_messages_shape():
    assert prompts.to_messages("s", "u") == [
        {"role": "system", "content": "s"}, {"role": "user", "content": "u"},
    ]


def test_an_empty_system_message_is_left_out():
    assert prompts.to_messages("", "u") == [{"role": "user", "content": "u"}]


def test_memagent_prompts_fill_the_reference_slots():
    reading = prompts.render_memagent_reading(["Q1?", "Q2?"], "a {chunk}", "")
    assert "<problem> \nQ1?\nQ2?\n</problem>" in reading and "<section>\na {chunk}\n</section>" in reading
    assert f"<memory>\n{prompts.NO_MEMORY}\n</memory>" in reading
    answering = prompts.render_memagent_answering("Q2?", "facts {x}")
    assert "<problem> \nQ2?\n</problem>" in answering and "<memory>\nfacts {x}\n</memory>" in answering
    assert "put the answer in \\boxed{}." in answering


def test_the_compact_style_keeps_every_section_in_a_fraction_of_the_text():
    import gymnasium as gym

    import atommem_env  # noqa: F401

    paper = gym.make("AtomMem-Synthetic-v0", num_documents=6, chunk_tokens=256)
    compact = gym.make("AtomMem-Synthetic-v0", num_documents=6, chunk_tokens=256, prompt_style="compact")
    (p, _), (c, _) = paper.reset(seed=3), compact.reset(seed=3)
    assert c["chunk"] == p["chunk"] and c["chunk"] in c["user"] and c["questions"][0] in c["user"]
    assert len(c["system"]) < len(p["system"]) / 5 and len(c["user"]) < len(p["user"])
    for tag in ("update_memory", "add_memory", "update_query", "modify_memory", "delete_memory", "final_answer"):
        assert f"<{tag}>" in c["system"]
    assert "Short-term memory:" in c["user"] and "Retrieved entries:" in c["user"] and "Reads used: 0 of 3" in c["user"]
    step = "<update_memory>plan</update_memory><add_memory>Sagusk Tides fact</add_memory>"
    while c["phase"] == 0:
        c, *_ = compact.step(step)
    assert "Question:" in c["user"] and "<final_answer>\\boxed{answer}</final_answer>" in c["user"]
    assert "Memory 1: Sagusk Tides fact" in c["user"] and "plan" in c["user"]
    # The same actions have the same effects: only the wording differs.
    c, reward, *_ = compact.step("<final_answer>\\boxed{nowhere}</final_answer>")
    assert reward == 0.0


def test_compact_prompts_hide_ablated_sections():
    view = prompts.PromptView(scratchpad=None, query=None, memories=None, reads=1, max_reads=3)
    text = prompts.render_reading(["Q?"], "chunk text", view, style="compact")
    assert "Short-term memory" not in text and "Retrieved entries" not in text and "chunk text" in text
    assert "disabled" in prompts.render_system(("retrieval",), style="compact")


def test_an_unknown_prompt_style_is_a_config_error():
    import pytest

    from atommem_env.config import EnvConfig
    from atommem_env.errors import ConfigError

    with pytest.raises(ConfigError, match="prompt_style"):
        EnvConfig(prompt_style="short")
