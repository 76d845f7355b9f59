"""The paper's prompt templates and pure functions that fill them.

The wording is the AtomMem reference implementation's (RUCBM/AtomMem,
``recurrent/impls/memory_long_short_multiquery.py``), typos included, so that a model trained by the
paper's recipe, such as the released AtomMem-8B, sees the prompts it was trained on. Our additions are
kept out of the paper's text: a feedback section appended only when the previous response had a
problem, and one line per disabled operation in ablations. ``action_format="tools"`` has its own system
and answering templates, kept beside these in :mod:`atommem_env.tool_prompts` (a variant, not the paper's).

The MemAgent baseline (SPEC §9) has its own two templates, verbatim from its reference (see
:data:`MEMAGENT_READING`); it sends them as a lone user message, without a system message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from atommem_env import tool_prompts as T

# The reference's initial query, verbatim (its typo is part of what trained models have seen).
DEFAULT_QUERY = "defult query, change it!"
NO_MEMORY = "No previous memory"

# A template's source line is a line of the message, so its long lines (and the reference's trailing
# spaces) are prompt content, not style: the templates carry a noqa for E501 / W291.
SYSTEM_PROMPT = """You are presented with a section of an article and a previous memory. Please learn the provided section carefully and manage your memory to answer questions.

Your short-term memory is a step-wise updated summary, while your long-term memory is a vector database that can be updated through atomic operations. 

short-term memory is updated using <update_memory>,you should use this every response.

four kinds of memory actions for database are available:
<update_query>: The system maintains a query for memory retrieval. You can modify it via query operations. You will not get any memory unless you give a query. 

<add_memory>: creates a new entry in the memory. You do not need to repeatly add the memory shown to you or enter index of the memory. 

<modify_memory>: updates the existing entry, You need to enter the memory index "Memory i:" to specify which memory to modify. To manage large volumes of memory effectively, you should prioritize using the "modify" function MORE frequently, rather than relying solely on "add" operations.

<delete_memory>: delete a memory. You need to enter the memory index "Memory i" to specify which memory to delete. You must delete duplicate memory entries!

Use paired XML tags as action markers so you can perform multiple actions—such as adding several memories—in a single response.

action example 1:
<update_query>dance partner; Yulia Zagoruychenko.</update_query> 
action example 2:
<add_memory>
Document 10 indicates that the dance event took place in Moscow in October and that Yulia participated in it. I need to focus more on who else attended this event or who traveled to Moscow in October, in order to infer who Yulia’s dance partner might be.
</add_memory>
action example 3:
<modify_memory>Memory 1: The current article provides updated competition records showing that Riccardo Cocchi is now partnered with Emily in the 2025 season, while no recent evidence confirms his continued partnership with Yulia Zagoruychenko. This conflicts with the previous memory stating that Yulia’s partner is Riccardo. Since the information clearly supersedes the earlier record, the correct action is to modify the existing memory to reflect that Yulia’s current dance partner is unknown as of 2025, and mark the entry for re-verification.</modify_memory>
action example 4:
It can be observed that Entry 2 and Entry 6 are largely duplicated. Since Entry 6 is more recent, I choose to delete Entry 2. <delete_memory>Memory 2</delete_memory>

Response example:
<update_memory>
**1. Memory Framework Overview**  
The provided section describes a **memory-augmented reasoning framework** in which the agent maintains two complementary memory systems. **Short-term memory** functions as an evolving, step-wise summary that tracks the most immediate context, while **long-term memory** resides in a vector database capable of being updated through atomic operations.

**2. Memory Operations**  
The text further introduces **four atomic memory actions**—**update_query**, **add_memory**, **modify_memory**, and **delete_memory**.  
These collectively define how the agent:
- retrieves information through query management,
- adds new knowledge,
- updates outdated or inaccurate entries, and
- removes redundant or conflicting information.

**3. Functional Role of the Two Memory Types**  
The mechanisms emphasize the importance of **active and continuous memory management**. Short-term memory captures high-level situational summaries that guide immediate reasoning, while long-term memory stores **fine-grained, reusable knowledge** that can support future inference, compensate for missing context, and improve the agent’s overall consistency across steps.
</update_memory>

<update_query>
short-term vs long-term memory mechanism; atomic operations; memory workflow
</update_query>

<add_memory>
Long-term memory note: The system's memory architecture explicitly separates short-term and long-term roles. Short-term memory is updated every step and acts as a compressed running summary of what the agent has just read, inferred, or decided. In contrast, the long-term memory is a vector-database-backed store meant to hold more detailed, fine-grained, and broadly relevant information—such as definitions, recurring concepts, protocol rules, and any knowledge that may be useful across multiple future queries. The long-term store is maintained through atomic operations (query updating, adding new facts, modifying older entries, and deleting redundant ones), making it flexible and continually improvable as new context appears.
</add_memory>
"""  # noqa: E501, W291

_READING_HEAD = """
This is the question you need to solve:
{questions}
"""

_SCRATCHPAD_SECTION = """
This is your short term memory from the previous turn.
{scratchpad}
"""

_RETRIEVAL_SECTION = """
This is current query to retrieve memory from database:
{query}

This is current memory related to the query:
{memories}
"""

_READING_TAIL = """
Tips:
 -DO NOT repeatly update query. If you don’t have the desired memory, it means the entry does not exist in the knowledge base. AVOID using update_query multiple times within a single response, instead, you can use a long and composite query to retrieve document of different question. The query matches documents based on semantic embeddings, and composite queries are best composed of keywords.

This is the article:
{chunk}

Important:
Now you should follow this strategy to manage memory:
1) You should store only the most important information in short-term memory, while placing more detailed and broadly relevant information into long-term memory. This allows you to supplement missing information by retrieving it from long-term memory when needed.
2) The entries you write into the database using add_memory should contain information that your short-term memory tends to overlook—those with weaker relevance or even information that is entirely unrelated at the moment. The text stored in the database should not contain any reasoning or descriptions of the current state; it should consist solely of factual or knowledge-based information. Add at least 5-6 unrelated knowledge into the database.
3) When confronted with multiple question at the time, discuss the relevant information for each problem separately (using 1. 2. 3.) within your short-term memory.

Focus on your query times:
You have update query **{reads}** times, exceed **{max_reads}** will lead to the task failure.
"""  # noqa: E501

_ANSWERING_HEAD = """You are presented with a problem and a previous memory. Based on the memory, use '<final_answer></final_answer>' to answer the problem in \\boxed{{}}. You can use update query to get memory.

Tips:
AVOID using update_query multiple times within a single response, instead, you can use a long and composite query to retrieve document of different question. The query matches documents based on semantic embeddings, and composite queries are best composed of keywords. When you choose update_query, the process will be frozen, meaning you can answer the question in the next round. Do not update memory in this stage!

problem:
{question}
"""  # noqa: E501

_ANSWERING_TAIL = """
Output the answer only as an exact match—do not add any description.
Example 1:
<update_query>The dance partner; Alice.</update_query>
Example 2:
<final_answer>\\boxed{{Jacob}}</final_answer>.

Focus on your query times:
You have update query **{reads}** times, exceed **{max_reads}** will lead to the task failure. When you are about to exceed the limit, use <final_answer>don't know</final_answer> to skip this question.
"""  # noqa: E501

_FEEDBACK_SECTION = """
Feedback on your previous response:
{feedback}
"""

# The "compact" style (not the paper's): the same sections, tags and rules in about a tenth of the
# tokens, so that small models and CPU training runs see short prompts (SPEC §8: SmolLM2 needs compact
# settings). Answers must still be boxed inside <final_answer>.
COMPACT_SYSTEM_PROMPT = """You read an article chunk by chunk and manage your memory to answer questions afterwards. Act with XML tags; one response may hold several actions.
<update_memory>text</update_memory> replaces your short-term memory (a running summary).
<add_memory>fact</add_memory> stores a new entry in long-term memory.
<update_query>keywords</update_query> retrieves the stored entries that best match the keywords.
<modify_memory>Memory i: new text</modify_memory> rewrites the shown entry i.
<delete_memory>Memory i</delete_memory> deletes the shown entry i.
<final_answer>\\boxed{answer}</final_answer> answers the current question (answering phase only).
"""  # noqa: E501

_COMPACT_READING_HEAD = """Questions:
{questions}
"""

_COMPACT_MEMORY = (
    """
Short-term memory:
{scratchpad}
""",
    """
Query: {query}
Retrieved entries:
{memories}
""",
)

_COMPACT_READING_TAIL = """
Article chunk:
{chunk}

Store the facts that help answer the questions. Reads used: {reads} of {max_reads}.
"""

_COMPACT_ANSWERING_HEAD = """Question:
{question}
"""

_COMPACT_ANSWERING_TAIL = """
Answer with <final_answer>\\boxed{{answer}}</final_answer>, or first retrieve with <update_query>keywords</update_query>. Reads used: {reads} of {max_reads}.
"""  # noqa: E501

# The templates by (prompt style, action format); the tools variants are in atommem_env.tool_prompts.
_SYSTEMS = {
    ("paper", "tags"): SYSTEM_PROMPT,
    ("compact", "tags"): COMPACT_SYSTEM_PROMPT,
    ("paper", "tools"): T.TOOLS_SYSTEM_PROMPT,
    ("compact", "tools"): T.COMPACT_TOOLS_SYSTEM_PROMPT,
}
_ANSWERING = {  # (head, tail)
    ("paper", "tags"): (_ANSWERING_HEAD, _ANSWERING_TAIL),
    ("compact", "tags"): (_COMPACT_ANSWERING_HEAD, _COMPACT_ANSWERING_TAIL),
    ("paper", "tools"): (T.TOOLS_ANSWERING_HEAD, T.TOOLS_ANSWERING_TAIL),
    ("compact", "tools"): (_COMPACT_ANSWERING_HEAD, T.COMPACT_TOOLS_ANSWERING_TAIL),
}

_DISABLED_NOTE = {
    "update_memory": "In this setting the short-term memory is disabled: <update_memory> has no effect.",
    "retrieval": "In this setting the long-term memory is disabled: database actions have no effect.",
    "delete_memory": "In this setting <delete_memory> is disabled.",
    "modify_memory": "In this setting <modify_memory> is disabled.",
}


@dataclass(frozen=True)
class PromptView:
    """What one turn's user message shows; sections set to ``None`` are hidden (clean ablations).

    ``blank_memories`` fills the memory slot with ``""`` instead of the list or "No previous memory",
    header kept, as the reference's disable_LTM / disable_Both ablations did.
    """

    scratchpad: str | None
    query: str | None
    memories: Sequence[str] | None
    reads: int
    max_reads: int
    feedback: str = ""
    blank_memories: bool = False


def render_memory_list(memories: Sequence[str]) -> str:
    """The ``Memory i: text`` list of the reference, or its "No previous memory" line."""
    if not memories:
        return NO_MEMORY
    return "\n".join(f"Memory {i}: {text}" for i, text in enumerate(memories, start=1))


def render_system(disabled: Sequence[str] = (), style: str = "paper", action_format: str = "tags") -> str:
    """The system message; ``disabled`` names switched-off features (keys of the ablation notes).

    ``action_format="tools"`` gives the tool-use variant (:mod:`atommem_env.tool_prompts`).
    """
    notes = [(T.TOOLS_DISABLED_NOTE if action_format == "tools" else _DISABLED_NOTE)[name] for name in disabled]
    return _SYSTEMS[(style, action_format)] + ("\n" + "\n".join(notes) + "\n" if notes else "")


def _memory_sections(view: PromptView, style: str = "paper") -> str:
    scratchpad, retrieval = _COMPACT_MEMORY if style == "compact" else (_SCRATCHPAD_SECTION, _RETRIEVAL_SECTION)
    text = ""
    if view.scratchpad is not None:
        text += scratchpad.format(scratchpad=view.scratchpad)
    if view.memories is not None:
        memories = "" if view.blank_memories else render_memory_list(view.memories)
        text += retrieval.format(query=view.query, memories=memories)
    return text


def _feedback(view: PromptView) -> str:
    return _FEEDBACK_SECTION.format(feedback=view.feedback) if view.feedback else ""


def render_reading(questions: Sequence[str], chunk: str, view: PromptView, style: str = "paper") -> str:
    """User message of a reading turn: all questions, memories, the chunk and the strategy."""
    compact = style == "compact"
    head, tail = (_COMPACT_READING_HEAD, _COMPACT_READING_TAIL) if compact else (_READING_HEAD, _READING_TAIL)
    head = head.format(questions="\n".join(questions))
    tail = tail.format(chunk=chunk, reads=view.reads, max_reads=view.max_reads)
    return head + _memory_sections(view, style) + tail + _feedback(view)


def render_answering(question: str, view: PromptView, style: str = "paper", action_format: str = "tags") -> str:
    """User message of an answering turn: one question, memories, and the answer format (for tags, or
    for ``action_format="tools"`` the tool-use variant; reading turns name no tags and are shared)."""
    head, tail = _ANSWERING[(style, action_format)]
    head = head.format(question=question)
    tail = tail.format(reads=view.reads, max_reads=view.max_reads)
    return head + _memory_sections(view, style) + tail + _feedback(view)


def to_messages(system: str, user: str) -> list[dict[str, str]]:
    """Chat messages in the OpenAI / Hugging Face chat-template format.

    An empty ``system`` is left out rather than sent empty: MemAgent's prompts are a lone user
    message, so the model's chat template applies its own default system prompt, as in its reference.
    """
    user_message = {"role": "user", "content": user}
    return [{"role": "system", "content": system}, user_message] if system else [user_message]


# ------------------------------------------------------------------------------ MemAgent baseline
# Verbatim from BytedTsinghua-SIA/MemAgent, recurrent/impls/memory.py (TEMPLATE and
# TEMPLATE_FINAL_BOXED; the same text is in taskutils/memory_eval/utils/recurrent_boxed.py), including
# the space after "<problem>". The first chunk shows the reference's NO_MEMORY, "No previous memory".
MEMAGENT_READING = """You are presented with a problem, a section of an article that may contain the answer to the problem, and a previous memory. Please read the provided section carefully and update the memory with the new information that helps to answer the problem. Be sure to retain all relevant details from the previous memory while adding any new, useful information.

<problem> 
{prompt}
</problem>

<memory>
{memory}
</memory>

<section>
{chunk}
</section>

Updated memory:
"""  # noqa: E501, W291

MEMAGENT_ANSWERING = """You are presented with a problem and a previous memory. Please answer the problem based on the previous memory and put the answer in \\boxed{{}}.

<problem> 
{prompt}
</problem>

<memory>
{memory}
</memory>

Your answer:
"""  # noqa: E501, W291


# The AtomMem paper's MemAgent baseline (RUCBM/AtomMem at e5a9b3d, recurrent/impls/memory_multiquery.py,
# TEMPLATE_FINAL_BOXED) is MemAgent's answering template with one more sentence after the box instruction
# (its dash is U+2014, as in the AtomMem answering prompt). Its reading template is MemAgent's unchanged.
MEMAGENT_ANSWERING_ATOMMEM_PAPER = MEMAGENT_ANSWERING.replace(
    "\\boxed{{}}.", "\\boxed{{}}. Output the answer only as an exact match\u2014do not add any description.", 1
)

#: The MemAgent answering templates by ``memagent_prompt`` option: the AtomMem paper's baseline and MemAgent's own.
MEMAGENT_ANSWERING_TEMPLATES = {"atommem-paper": MEMAGENT_ANSWERING_ATOMMEM_PAPER, "memagent": MEMAGENT_ANSWERING}


def _memagent_memory(memory: str, verbatim: bool) -> str:
    return memory if verbatim or memory.strip() else NO_MEMORY


def render_memagent_reading(questions: Sequence[str], chunk: str, memory: str, *, verbatim: bool = False) -> str:
    """MemAgent's reading prompt: the episode's questions, one per line, the memory and the chunk.

    One question per line, unnumbered, is how the AtomMem reference's multi-question MemAgent
    baseline (RUCBM/AtomMem, ``recurrent/impls/memory_multiquery.py``) fills ``{prompt}``, and how
    the AtomMem reading prompt lists them too; with one question it is MemAgent's own prompt. An
    empty memory is shown as :data:`NO_MEMORY`, unless ``verbatim`` (the memory exactly as given).
    """
    shown = _memagent_memory(memory, verbatim)
    return MEMAGENT_READING.format(prompt="\n".join(questions), memory=shown, chunk=chunk)


def render_memagent_answering(question: str, memory: str, variant: str = "memagent", *,
                              verbatim: bool = False) -> str:
    """MemAgent's final prompt for one question: answer it from the memory, in ``\\boxed{}``.

    ``variant`` picks the template (:data:`MEMAGENT_ANSWERING_TEMPLATES`): ``"memagent"`` is MemAgent's
    own, ``"atommem-paper"`` the AtomMem paper's baseline, which adds the exact-match sentence. The
    memory is shown as in :func:`render_memagent_reading`.
    """
    shown = _memagent_memory(memory, verbatim)
    return MEMAGENT_ANSWERING_TEMPLATES[variant].format(prompt=question, memory=shown)
