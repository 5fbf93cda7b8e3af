"""Typed dialogs: confirm a disruptive action, choose the node a group moves to."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, OptionList
from textual.widgets.option_list import Option

BEST = "*"  # the move dialog's "let the policy choose" answer


class ConfirmDialog(ModalScreen[bool]):
    """Yes or no to one disruptive action; escape (or n) says no."""

    BINDINGS = [Binding("escape,n", "answer(False)", "Cancel", show=False),
                Binding("y", "answer(True)", "Confirm", show=False)]

    def __init__(self, title: str, message: str, confirm: str) -> None:
        super().__init__(classes="dialog")
        self._title = title
        self._message = message
        self._confirm = confirm

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-body"):
            yield Label(self._title, classes="dialog-title")
            yield Label(self._message, classes="dialog-message")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self._confirm, id="confirm", variant="error")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#confirm", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class MoveDialog(ModalScreen[str | None]):
    """Where to move a group: a node that can host it, or the policy's choice (``BEST``).

    Choosing the node is the confirmation; escape cancels (None).
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(self, group: str, owner: str | None, nodes: Sequence[dict[str, Any]]) -> None:
        super().__init__(classes="dialog")
        self._group_name = group
        self._current_owner = owner
        self._candidates = list(nodes)

    def compose(self) -> ComposeResult:
        options = [Option("best node (the policy chooses)", id=BEST)]
        for node in self._candidates:
            name, state = node["name"], node["state"]
            why = ("runs it now" if name == self._current_owner
                   else "" if state == "up" else f"{state}: cannot host it")
            options.append(Option(f"{name}  {why}".rstrip(), id=name,
                                  disabled=name == self._current_owner or state != "up"))
        with Vertical(classes="dialog-body"):
            yield Label(f"Move group {self._group_name}", classes="dialog-title")
            yield Label(f"from {self._current_owner or 'nowhere'} to:", classes="dialog-message")
            yield OptionList(*options, id="move-targets")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    @on(Button.Pressed, "#cancel")
    def _cancelled(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
