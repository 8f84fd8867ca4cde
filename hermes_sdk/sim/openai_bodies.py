"""The OpenAI request and response bodies the simulated engine reads and writes, as pure functions:
the prompt of a chat/completion/embeddings body, deterministic output text (a seeded digest of the
prompt picks each token's word), ``usage`` objects and embeddings ``input`` parsing. No HTTP here:
:mod:`hermes_sdk.sim.engine` serves them."""

from __future__ import annotations

import base64
import hashlib
import math
import random
import struct
from collections.abc import Mapping
from typing import Final

_WORDS: Final = (
    "the of and to in is that it for on as with was by at be this from or an are not have "
    "which one all were when we there can more their if will about out so what up has into"
)
_VOCAB: Final = tuple(_WORDS.split())


def prompt_text(body: Mapping[str, object], endpoint: str) -> str | None:
    """The prompt as one string, or None if the body has no usable prompt."""
    if endpoint == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return None
        parts: list[str] = []
        for msg in messages:
            if not isinstance(msg, dict):
                return None
            content = msg.get("content")
            if isinstance(content, list):
                content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            parts.append(f"{msg.get('role', 'user')}: {content or ''}")
        return "\n".join(parts)
    prompt = body.get("prompt" if endpoint == "completion" else "input")
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt:
        return "\n".join(p if isinstance(p, str) else " ".join(map(str, p)) for p in prompt)
    return None


def text_digest(seed: int, text: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}\x00{text}".encode(), digest_size=8).digest())


def token_text(digest: int, index: int) -> str:
    return " " + _VOCAB[(digest + index * 7919) % len(_VOCAB)]


def usage_body(prompt_tokens: int, completion_tokens: int, cached: int = 0) -> dict[str, object]:
    out: dict[str, object] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if cached:  # OpenAI's field for prompt tokens served from a prefix cache
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    return out


def is_token_ids(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(t, int) and not isinstance(t, bool) for t in value
    )


def embedding_texts(raw: object) -> list[str] | None:
    """The texts of an OpenAI embeddings ``input`` (token ids become their decimal strings)."""
    if isinstance(raw, str):
        return [raw]
    if not isinstance(raw, list) or not raw:
        return None
    if is_token_ids(raw):
        return [" ".join(map(str, raw))]
    texts = []
    for item in raw:
        if isinstance(item, str):
            texts.append(item)
        elif is_token_ids(item) and item:
            texts.append(" ".join(map(str, item)))
        else:
            return None
    return texts


def embedding_data(
    seed: int, texts: list[str], dim: int, as_base64: bool
) -> list[dict[str, object]]:
    """The ``data`` of an embeddings response: per text a unit vector of ``dim`` floats seeded by
    the text (the same text always embeds the same), as a list or as base64 little-endian
    float32 (``encoding_format="base64"``)."""
    data: list[dict[str, object]] = []
    for i, text in enumerate(texts):
        rng = random.Random(text_digest(seed, text))
        vec = [rng.gauss(0.0, 1.0) for _ in range(dim)]
        norm = math.sqrt(sum(v * v for v in vec)) or 1.0
        vec = [v / norm for v in vec]
        embedding: object = vec
        if as_base64:
            embedding = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
        data.append({"object": "embedding", "index": i, "embedding": embedding})
    return data
