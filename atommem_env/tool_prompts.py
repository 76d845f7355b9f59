"""The prompts of ``action_format="tools"``: the paper's prompts rewritten for tool calls, and the tools.

A variant of the paper's protocol, not the paper's: the memory sections and the reading strategy are
the paper's (:mod:`atommem_env.prompts`, shared unchanged), while every instruction about tags becomes
a tool: the system message says what the memories are and that several tools may be called at once,
and the paper's description of each action (its wording kept, typos included) becomes the description
of its tool in :func:`tool_schemas`. How a call is written is left to the model's chat template, which
renders the schemas (``apply_chat_template(messages, tools=...)``, or the server's for
``tools=`` in an OpenAI request), so the prompts name tools and never show a call's syntax.

The ``compact`` style has its own shorter texts, as for tags.
"""

from __future__ import annotations

from typing import Any

from atommem_env.tool_calls import TOOL_ARGUMENTS

TOOLS_SYSTEM_PROMPT = """You are presented with a section of an article and a previous memory. Please learn the provided section carefully and manage your memory to answer questions.

Your short-term memory is a step-wise updated summary, while your long-term memory is a vector database that can be updated through atomic operations.

Short-term memory is updated with the update_memory tool; you should use this every response.

Four tools act on the database: update_query retrieves memory, add_memory creates an entry, modify_memory updates one and delete_memory deletes one; each tool's description says how. final_answer answers a problem once the article has been read.

You can call several tools in a single response, such as add_memory several times.
"""  # noqa: E501

TOOLS_ANSWERING_HEAD = """You are presented with a problem and a previous memory. Based on the memory, call final_answer to answer the problem. You can use update query to get memory.

Tips:
AVOID using update_query multiple times within a single response, instead, you can use a long and composite query to retrieve document of different question. The query matches documents based on semantic embeddings, and composite queries are best composed of keywords. When you choose update_query, the process will be frozen, meaning you can answer the question in the next round. Do not update memory in this stage!

problem:
{question}
"""  # noqa: E501

TOOLS_ANSWERING_TAIL = """
Output the answer only as an exact match—do not add any description.
Example 1: update_query with keywords "The dance partner; Alice."
Example 2: final_answer with answer "Jacob"

Focus on your query times:
You have update query **{reads}** times, exceed **{max_reads}** will lead to the task failure. When you are about to exceed the limit, call final_answer with answer "don't know" to skip this question.
"""  # noqa: E501

COMPACT_TOOLS_SYSTEM_PROMPT = """You read an article chunk by chunk and manage your memory to answer questions afterwards. Act by calling tools; one response may hold several calls.
update_memory keeps your short-term memory (a running summary). add_memory, modify_memory and delete_memory manage the long-term entries shown as "Memory i"; update_query retrieves the entries that best match its keywords; final_answer answers the current question (answering phase only).
"""  # noqa: E501

COMPACT_TOOLS_ANSWERING_TAIL = """
Answer with final_answer, or first retrieve with update_query. Reads used: {reads} of {max_reads}.
"""

TOOLS_DISABLED_NOTE = {
    "update_memory": "In this setting the short-term memory is disabled: update_memory has no effect.",
    "retrieval": "In this setting the long-term memory is disabled: the database tools have no effect.",
    "delete_memory": "In this setting delete_memory is disabled.",
    "modify_memory": "In this setting modify_memory is disabled.",
}

# What each tool does, by prompt style: the paper's sentences for its tags, and the compact lines.
_DESCRIPTIONS = {
    "paper": {
        "update_memory": "Replaces your short-term memory, a step-wise updated summary. You should use this every "
                         "response.",
        "update_query": "The system maintains a query for memory retrieval. You can modify it via query "
                        "operations. You will not get any memory unless you give a query.",
        "add_memory": "creates a new entry in the memory. You do not need to repeatly add the memory shown to you "
                      "or enter index of the memory.",
        "modify_memory": "updates the existing entry, You need to enter the memory index i of \"Memory i\" to "
                         "specify which memory to modify. To manage large volumes of memory effectively, you should "
                         "prioritize using the \"modify\" function MORE frequently, rather than relying solely on "
                         "\"add\" operations.",
        "delete_memory": "delete a memory. You need to enter the memory index i of \"Memory i\" to specify which "
                         "memory to delete. You must delete duplicate memory entries!",
        "final_answer": "Answers the problem (after the last section). Output the answer only as an exact "
                        "match—do not add any description.",
    },
    "compact": {
        "update_memory": "Replaces your short-term memory (a running summary).",
        "update_query": "Retrieves the stored entries that best match the keywords.",
        "add_memory": "Stores a new entry in long-term memory.",
        "modify_memory": "Rewrites the shown entry Memory i.",
        "delete_memory": "Deletes the shown entry Memory i.",
        "final_answer": "Answers the current question (answering phase only).",
    },
}
_ARGUMENT_DESCRIPTIONS = {
    ("update_memory", "text"): "The new short-term memory; it replaces the previous one.",
    ("update_query", "keywords"): "The new query, best composed of keywords, e.g. \"dance partner; Yulia "
                                  "Zagoruychenko.\"",
    ("add_memory", "text"): "The entry: factual or knowledge-based information only.",
    ("modify_memory", "rank"): "The i of the shown \"Memory i\".",
    ("modify_memory", "text"): "The entry's new text.",
    ("delete_memory", "rank"): "The i of the shown \"Memory i\".",
    ("final_answer", "answer"): "The answer only, e.g. \"Jacob\".",
}


def tool_schemas(style: str = "paper") -> list[dict[str, Any]]:
    """The six tools in the OpenAI ``tools`` format (what ``observation["tools"]`` holds).

    Every argument is required and no other is accepted (``additionalProperties: false``), as the
    parser (:func:`~atommem_env.tool_calls.op_of_call`) checks; a rank is an integer from 1.
    """
    descriptions = _DESCRIPTIONS[style]
    return [
        {
            "type": "function",
            "function": {
                "name": name,
                "description": descriptions[name],
                "parameters": {
                    "type": "object",
                    "properties": {argument: _property(name, argument, kind) for argument, kind in arguments},
                    "required": [argument for argument, _ in arguments],
                    "additionalProperties": False,
                },
            },
        }
        for name, arguments in TOOL_ARGUMENTS.items()
    ]


def _property(name: str, argument: str, kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": kind, "description": _ARGUMENT_DESCRIPTIONS[(name, argument)]}
    if kind == "integer":
        schema["minimum"] = 1
    return schema
