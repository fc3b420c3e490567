"""Keys act in the order they are typed, however fast they come (a paste, ``tmux send-keys``).

Textual hands a key to the focused widget and acts on an app binding only once the key has
bubbled back up, after the keys queued behind it have gone to the old focus: ``/`` then ``c``
sent ``c`` to the runs table, where it continued the paused run instead of searching for "c".
So an app key that the app would act on anyway acts on arrival; where every other key goes is
unchanged. (Dialogs take their first focus at once for the same reason: ``keys.focus_now``.)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from textual import events
from textual.app import App
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Input, TextArea


def main_screen_key(app: App[None], event: events.Key) -> Binding | None:
    """The app's own binding for ``event`` when it may act at once, before the keys behind it:
    only the key the app would have acted on anyway (no closer widget binds it, no text field is
    typing it, no dialog is open, the action is enabled)."""
    if isinstance(app.screen, ModalScreen) or isinstance(app.focused, (Input, TextArea)):
        return None
    active = app.screen.active_bindings.get(event.key)
    if active is None or active.node is not app or not active.enabled or active.binding.priority:
        return None
    binding: Binding = active.binding
    return binding


class KeyOrder(App[None]):
    """App keys act on arrival (a base of the workbench app; see the module docstring)."""

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and not event.is_forwarded:
            binding = main_screen_key(self, event)
            if binding is not None and await self.run_action(binding.action):
                return
        await super().on_event(event)


Action = TypeVar("Action", bound=Callable[..., Any])


def after_typed_keys(action: Action) -> Action:
    """Make a priority binding's action wait for the keys typed before it.

    A priority binding acts when its key reaches the app, while the keys typed just before it
    may still wait in the focused text box's queue: ``ctrl+r`` sent right after the text of a run
    form ran the form with its fields still empty (and the SQL console ran half a query). The
    action is queued behind them instead, on the focused widget, so it sees what was typed.
    """

    @functools.wraps(action)
    def deferred(self: Any, *args: Any) -> None:
        focused = self.app.focused
        if focused is None:
            action(self, *args)
        else:
            focused.call_later(action, self, *args)

    return deferred  # type: ignore[return-value]
