"""The offline demo model: deterministic answers good enough for the demo graphs to branch.

It is served through litellm's own custom-provider mechanism (``litellm.custom_provider_map``),
so a demo run goes through exactly the code path a real provider does: request building,
retries, usage, streaming. Models:

* ``workbench-demo/assistant`` — recognises the demo graphs' tasks (classify, draft a reply,
  plan subtopics, research, write, critique, chat) from the prompt and answers by rules.
* ``workbench-demo/echo`` — repeats the last user message.
* ``workbench-demo/rate-limited`` — always answers 429 (to exercise retries and fallbacks).
* ``workbench-demo/broken`` — always fails with a server error.
* ``workbench-demo/silent`` — never answers (to exercise timeouts).
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from typing import Any

PROVIDER = "workbench-demo"

_CATEGORY_WORDS: dict[str, tuple[str, ...]] = {
    "refund": ("refund", "money back", "reimburse", "chargeback", "return my"),
    "escalation": ("lawyer", "legal", "unacceptable", "complaint", "furious", "manager", "sue"),
    "billing": ("invoice", "bill", "charged", "charge", "payment", "price", "subscription"),
    "technical": ("error", "bug", "crash", "login", "log in", "password", "broken", "not working", "500"),
}


def _text(messages: list[dict[str, Any]], role: str) -> str:
    parts = [str(m.get("content") or "") for m in messages if m.get("role") == role]
    return "\n".join(parts)


def count_tokens(text: str) -> int:
    """A deterministic token estimate (about 4 characters a token)."""
    return max(1, (len(text) + 3) // 4)


def classify(message: str, categories: list[str]) -> str:
    low = message.lower()
    for cat, words in _CATEGORY_WORDS.items():
        if cat in categories and any(w in low for w in words):
            return cat
    return "general" if "general" in categories or not categories else categories[-1]


def _subtopics(question: str) -> list[str]:
    q = re.sub(r"[?.!]+$", "", question.strip())
    q = re.sub(r"^(what|how|why|which|should|can|does|do|is|are)\s+", "", q, flags=re.I)
    parts = [p.strip() for p in re.split(r",|\band\b|\bor\b|\bvs\.?\b|\bversus\b|;", q) if p.strip()]
    topics = [p[:60] for p in parts][:4]
    extras = ["background and definitions", "trade-offs and risks", "recent developments"]
    for extra in extras:
        if len(topics) >= 2 + len(question) // 60:
            break
        topics.append(extra)
    return topics[:5]


def _chat_reply(messages: list[dict[str, Any]]) -> str:
    """A conversation turn: the demo model remembers the user's name and counts the turns, from
    the message history alone (what a continued conversation gives it)."""
    said = [str(m.get("content") or "") for m in messages if m.get("role") == "user"]
    last = said[-1].strip() if said else ""
    name = None
    for text in said:
        m = re.search(r"\bmy name is ([A-Z][\w-]*)", text, flags=re.I)
        if m:
            name = m.group(1).capitalize()
    low = last.lower()
    if re.search(r"\bmy name is\b", low) and name:
        return f"Nice to meet you, {name}! What can I do for you?"
    if "my name" in low or "who am i" in low:
        return f"You told me your name is {name}." if name else "You have not told me your name yet."
    if re.search(r"\border\b", low):
        return "I can place that order once it is confirmed."
    if "how many" in low and "message" in low:
        return f"This is message {len(said)} you have sent me in this conversation."
    return f"You said: {last!r}. (message {len(said)} of our conversation)"


def demo_reply(model: str, messages: list[dict[str, Any]]) -> str:
    """The demo model's answer to ``messages`` (pure: same input, same output)."""
    name = model.split("/", 1)[-1]
    system = _text(messages, "system")
    user = _text(messages, "user")
    low = system.lower()
    if name == "echo":
        return user.splitlines()[-1] if user else ""
    if "chat assistant" in low:
        return _chat_reply(messages)
    if "classify" in low:
        m = re.search(r"categories:\s*([^\n]+)", system, flags=re.I)
        cats = [c.strip().lower() for c in m.group(1).split(",")] if m else []
        return classify(user, cats)
    if "subtopic" in low:
        return "\n".join(f"- {t}" for t in _subtopics(user))
    if "critique" in low:
        sections = len(re.findall(r"^## ", user, flags=re.M))
        if "## Conclusion" not in user:
            return "REVISE: add a conclusion that answers the question directly."
        if sections < 4:
            return "REVISE: cover each subtopic in its own section before concluding."
        return "GOOD"
    if "research" in low and "note" in low:
        topic = user.strip().splitlines()[-1] if user.strip() else "the topic"
        return (f"{topic}: the main sources agree on the basics; the open question is cost at scale. "
                f"Evidence quality is moderate.")
    if "revise" in low or ("write" in low and "report" in low):
        notes = [ln[2:] for ln in user.splitlines() if ln.startswith("- ")]
        parts = [f"## {n.split(':')[0].strip().capitalize()}\n{n}" for n in notes]
        body = "\n\n".join(parts) or "## Findings\n(no notes)"
        wants_conclusion = "conclusion" in user.lower() and "feedback" in user.lower()
        wants_sections = "each subtopic" in user.lower()
        if wants_sections and len(notes) < 3:
            body += "\n\n## Context\nHow the pieces fit together.\n\n## Risks\nWhat could go wrong."
        if wants_conclusion or wants_sections:
            body += "\n\n## Conclusion\nOn balance the evidence supports a cautious yes."
        return body
    if "reply" in low or "draft" in low:
        cat_match = re.search(r"category:\s*(\w+)", user, flags=re.I)
        category = cat_match.group(1).lower() if cat_match else "general"
        name_match = re.search(r"customer name:\s*([^\n]+)", user, flags=re.I)
        who = name_match.group(1).strip() if name_match else "there"
        safe = "safety feedback" in user.lower()
        lines = [f"Hi {who},", "", "Thanks for getting in touch."]
        if category in ("refund", "billing"):
            if safe:
                lines.append("I've passed your request to our billing team, who will review it "
                             "against our refund policy and reply within two business days.")
            else:
                lines.append("We guarantee a full refund, which will reach your account today.")
        elif category == "technical":
            lines.append("Please try resetting your password from the sign-in page; if the error "
                         "persists, reply with a screenshot and we will investigate.")
        else:
            lines.append("I've noted your message and a member of the team will follow up shortly.")
        lines += ["", "Best regards,", "Support"]
        return "\n".join(lines)
    return f"(demo model) I read {count_tokens(user)} tokens of input."


def build_handler() -> Any:
    """Create the litellm ``CustomLLM`` handler (imports litellm; call only when needed)."""
    import litellm
    from litellm import CustomLLM
    from litellm.types.utils import ModelResponse

    def _fail(name: str, model: str) -> None:
        if name == "rate-limited":
            raise litellm.RateLimitError(message="demo model: rate limited", llm_provider=PROVIDER, model=model)
        if name == "broken":
            raise litellm.ServiceUnavailableError(message="demo model: unavailable", llm_provider=PROVIDER,
                                                  model=model)

    def _response(model: str, messages: list[dict[str, Any]]) -> ModelResponse:
        name = model.split("/", 1)[-1]
        _fail(name, model)
        text = demo_reply(model, messages)
        prompt = sum(count_tokens(str(m.get("content") or "")) for m in messages)
        resp = ModelResponse(
            model=f"{PROVIDER}/{name}",
            choices=[{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            usage={"prompt_tokens": prompt, "completion_tokens": count_tokens(text),
                   "total_tokens": prompt + count_tokens(text)},
        )
        return resp

    def _chunks(model: str, messages: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        name = model.split("/", 1)[-1]
        _fail(name, model)
        text = demo_reply(model, messages)
        words = re.findall(r"\S+\s*|\s+", text) or [""]
        prompt = sum(count_tokens(str(m.get("content") or "")) for m in messages)
        for i, w in enumerate(words):
            last = i == len(words) - 1
            yield {
                "text": w, "is_finished": last, "finish_reason": "stop" if last else "",
                "index": 0, "tool_use": None,
                "usage": {"prompt_tokens": prompt, "completion_tokens": count_tokens(text),
                          "total_tokens": prompt + count_tokens(text)} if last else None,
            }

    class DemoLLM(CustomLLM):  # type: ignore[misc]
        """litellm custom provider for the ``workbench-demo/*`` models."""

        def completion(self, model: str, messages: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
            if model.split("/", 1)[-1] == "silent":
                threading.Event().wait(3600)  # a provider that ignores the timeout it was given
            return _response(model, messages)

        async def acompletion(self, model: str, messages: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
            if model.split("/", 1)[-1] == "silent":
                await asyncio.sleep(3600)
            return _response(model, messages)

        def streaming(self, model: str, messages: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
            yield from _chunks(model, messages)

        async def astreaming(self, model: str, messages: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
            for chunk in _chunks(model, messages):
                yield chunk

    return DemoLLM()
