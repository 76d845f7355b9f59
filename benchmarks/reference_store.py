"""Two batch stores behind one interface: the reference implementation's design, and ours.

:class:`ReferenceStore` rebuilds what the AtomMem reference (RUCBM/AtomMem,
``recurrent/impls/memory_long_short_multiquery.py``) does with memory during a rollout batch:

- one LangChain ``FAISS`` vector store (``faiss.IndexFlatL2`` + ``InMemoryDocstore``) for every episode
  of the batch, each entry tagged with its episode's index in its metadata;
- retrieval through ``as_retriever(search_kwargs={"k": 6, "filter": {"trajectory_id": idx},
  "fetch_k": 40000})``: the query is embedded, FAISS ranks *every* stored vector of the batch, and
  LangChain looks up each hit's document and tests its metadata until it has gone through them all.
  The reference's ``idx`` comes from ``for idx in torch.where(self.active_mask)[0]``: a 0-d int64
  tensor, so every test compares the stored int with a tensor (``int == tensor`` makes a bool tensor,
  which ``all`` then converts), about twice the cost of comparing two ints. ``filter_by="tensor"``
  does that; ``filter_by="int"`` filters by a plain int (the cheaper variant this benchmark used first);
- Update and Delete find the entry by comparing its text with every stored document (of any episode),
  delete it by id (which rebuilds the position-to-id map and shifts the FAISS index), and Update then
  adds the new text as a new entry.

This is a re-implementation of that design for measurement, written here, not copied.
:class:`OurStores` is the suite's design: one :class:`~atommem_env.memory.MemoryStore` per episode.
:class:`EmbeddingOnly` is the limit of that design: the embedding it does and nothing else.
Each takes its own instance of the same embedder, so none warms another's caches.
"""

from __future__ import annotations

import uuid
import warnings
from typing import Any

from atommem_env.embedders import Embedder
from atommem_env.errors import ConfigError
from atommem_env.memory import MemoryStore
from atommem_env.tokenization import RegexTokenizer

#: The reference's fetch_k for reading turns (it uses 16,000 when answering).
FETCH_K = 40_000


#: How the reference's retrieval filter names the episode: a plain int, or (as the reference code
#: does) a 0-d torch tensor.
FILTERS = ("int", "tensor")


def torch_missing() -> str | None:
    """Why the tensor filter cannot run here (torch is not installed), or None."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return "The reference's tensor filter skipped: it needs torch (pip install torch)."
    return None


def reference_missing() -> str | None:
    """Why the reference design cannot run here, or None."""
    try:
        import faiss  # noqa: F401
        import langchain_core  # noqa: F401
        with warnings.catch_warnings():  # langchain-community announces its sunset on import
            warnings.simplefilter("ignore", DeprecationWarning)
            import langchain_community.vectorstores  # noqa: F401
    except ImportError as exc:
        return (f"Reference design skipped: {exc.name} is not installed. It needs LangChain and "
                "faiss-cpu, benchmark-only dependencies: pip install -e '.[bench]'.")
    return None


def langchain_embeddings(embedder: Embedder) -> Any:
    """``embedder`` as a LangChain ``Embeddings`` (lists of floats, as the reference's server client)."""
    from langchain_core.embeddings import Embeddings

    class _Adapter(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return embedder.embed(list(texts)).tolist()

        def embed_query(self, text: str) -> list[float]:
            return embedder.embed([text], query=True)[0].tolist()

    return _Adapter()


class ReferenceStore:
    """The reference design: one LangChain FAISS store for the whole batch (see the module docstring).

    ``filter_by``: "int" or "tensor", how a retrieval names its episode in the metadata filter.
    """

    def __init__(self, embedder: Embedder, fetch_k: int = FETCH_K, filter_by: str = "int") -> None:
        if filter_by not in FILTERS:
            raise ConfigError(f"filter_by={filter_by!r}: use one of {FILTERS}.")
        import faiss
        from langchain_core.documents import Document
        with warnings.catch_warnings():  # langchain-community announces its sunset on import
            warnings.simplefilter("ignore", DeprecationWarning)
            from langchain_community.docstore.in_memory import InMemoryDocstore
            from langchain_community.vectorstores import FAISS

        self.fetch_k = fetch_k
        self._episode_key = _tensor_index if filter_by == "tensor" else int
        self._document = Document
        self.vectorstore = FAISS(langchain_embeddings(embedder), faiss.IndexFlatL2(embedder.dim),
                                 docstore=InMemoryDocstore(), index_to_docstore_id={})
        self.shown: dict[int, list[Any]] = {}

    def retrieve(self, episode: int, query: str, k: int) -> list[str]:
        search = {"k": k, "filter": {"trajectory_id": self._episode_key(episode)}, "fetch_k": self.fetch_k}
        self.shown[episode] = self.vectorstore.as_retriever(search_kwargs=search).invoke(query)
        return [doc.page_content for doc in self.shown[episode]]

    def create(self, episode: int, text: str) -> None:
        if text.strip():  # the reference stores the episode as a plain int (from .tolist())
            metadata = {"doc_id": str(uuid.uuid4()), "trajectory_id": episode}
            self.vectorstore.add_documents([self._document(page_content=text.strip(), metadata=metadata)])

    def update(self, episode: int, rank: int, text: str) -> None:
        self._replace(episode, self.shown[episode][rank - 1].page_content, text)

    def delete(self, episode: int, rank: int) -> None:
        self._replace(episode, self.shown[episode][rank - 1].page_content, "")

    def _replace(self, episode: int, old: str, new: str) -> None:
        # The entry is found by its text among all entries of the batch, then deleted by id.
        docstore = self.vectorstore.docstore
        for doc_id in self.vectorstore.index_to_docstore_id.values():
            if docstore.search(doc_id).page_content == old:
                self.vectorstore.delete([doc_id])
                break
        self.create(episode, new)

    def size(self) -> int:
        return len(self.vectorstore.index_to_docstore_id)


def _tensor_index(episode: int) -> Any:
    """``episode`` as the reference's loop gives it: a 0-d int64 tensor."""
    import torch

    return torch.tensor(episode, dtype=torch.long)


class OurStores:
    """The suite's design: one MemoryStore per episode; ranks resolve through its shown list."""

    def __init__(self, embedder: Embedder, episodes: int) -> None:
        tokenizer = RegexTokenizer()
        self.stores = [MemoryStore(embedder, tokenizer) for _ in range(episodes)]

    def retrieve(self, episode: int, query: str, k: int) -> list[str]:
        return [entry.text for entry in self.stores[episode].retrieve(query, k)]

    def create(self, episode: int, text: str) -> None:
        self.stores[episode].create(text)

    def update(self, episode: int, rank: int, text: str) -> None:
        store = self.stores[episode]
        store.update(store.id_at_rank(rank), text)

    def delete(self, episode: int, rank: int) -> None:
        store = self.stores[episode]
        store.delete(store.id_at_rank(rank))

    def size(self) -> int:
        return sum(len(store) for store in self.stores)


class EmbeddingOnly:
    """The limit of our design: the embedding it does and nothing else (every Create's and Update's
    text, and an episode's query when it changes and its store is not empty). Retrievals return as
    many placeholders as our store would show, so the trace addresses the same Updates and Deletes."""

    def __init__(self, embedder: Embedder, episodes: int) -> None:
        self.embedder = embedder
        self.queries: list[str | None] = [None] * episodes
        self.sizes = [0] * episodes

    def retrieve(self, episode: int, query: str, k: int) -> list[str]:
        if self.sizes[episode] and query != self.queries[episode]:  # an empty store embeds no query
            self.embedder.embed([query], query=True)
            self.queries[episode] = query
        return [""] * min(k, self.sizes[episode])

    def create(self, episode: int, text: str) -> None:
        self.embedder.embed([text.strip()])
        self.sizes[episode] += 1

    def update(self, episode: int, rank: int, text: str) -> None:
        self.embedder.embed([text.strip()])

    def delete(self, episode: int, rank: int) -> None:
        self.sizes[episode] -= 1

    def size(self) -> int:
        return sum(self.sizes)
