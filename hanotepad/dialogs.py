"""Typed modal dialogs: a choice between buttons, a file path, a line number."""

from __future__ import annotations

import os
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label


class ChoiceDialog(ModalScreen[str]):
    """Ask a question; dismissed with the id of the chosen button.

    With ``cancel`` set, escape dismisses with it; without, an answer is required
    (used where neither side may be dropped silently).
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(
        self,
        title: str,
        message: str,
        choices: list[tuple[str, str]],
        *,
        cancel: str | None = None,
    ) -> None:
        super().__init__(classes="dialog")
        self._title = title
        self._message = message
        self._choices = choices
        self._cancel = cancel

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-body"):
            yield Label(self._title, classes="dialog-title")
            yield Label(self._message, classes="dialog-message")
            with Horizontal(classes="dialog-buttons"):
                for index, (choice, label) in enumerate(self._choices):
                    variant = "primary" if index == 0 else "default"
                    yield Button(label, name=choice, id=f"choice-{choice}", variant=variant)

    @on(Button.Pressed)
    def _chosen(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.name)

    def action_cancel(self) -> None:
        if self._cancel is not None:
            self.dismiss(self._cancel)


class PathDialog(ModalScreen[Path | None]):
    """Pick a file path: type it, or browse with the tree. Dismissed with None on escape."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    AUTO_FOCUS = "#path-input"

    def __init__(self, title: str, *, folder: Path, initial: str, action: str) -> None:
        super().__init__(classes="dialog")
        self._title = title
        self._folder = folder if folder.is_dir() else Path.cwd()
        self._initial = initial
        self._action = action

    def compose(self) -> ComposeResult:
        from textual.widgets import DirectoryTree

        with Vertical(classes="dialog-body path-dialog"):
            yield Label(self._title, classes="dialog-title")
            yield Input(self._initial, id="path-input")
            yield DirectoryTree(self._folder, id="path-tree")
            yield Label("", id="path-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self._action, name="ok", variant="primary")
                yield Button("Cancel", name="cancel")


    def on_directory_tree_file_selected(self, event: object) -> None:
        path = getattr(event, "path", None)
        if isinstance(path, Path):
            self.query_one("#path-input", Input).value = str(path)
            self._submit(str(path))

    def on_directory_tree_directory_selected(self, event: object) -> None:
        path = getattr(event, "path", None)
        if isinstance(path, Path):
            self.query_one("#path-input", Input).value = str(path) + os.sep

    @on(Input.Submitted, "#path-input")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit(event.value)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.name == "ok":
            self._submit(self.query_one("#path-input", Input).value)
        else:
            self.dismiss(None)

    def _submit(self, value: str) -> None:
        value = value.strip()
        if not value or value.endswith(os.sep):
            self.query_one("#path-error", Label).update("type a file name, or pick a file")
            return
        self.dismiss(Path(os.path.abspath(os.path.expanduser(value))))

    def action_cancel(self) -> None:
        self.dismiss(None)


class GotoLineDialog(ModalScreen[int | None]):
    """Ask for a line number (1-based); dismissed with it, or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, line_count: int, current: int) -> None:
        super().__init__(classes="dialog")
        self._line_count = line_count
        self._current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-body"):
            yield Label(f"Go to line (1-{self._line_count})", classes="dialog-title")
            yield Input(str(self._current), type="integer", id="line-input")

    AUTO_FOCUS = "#line-input"

    def on_mount(self) -> None:
        for line_input in self.query("#line-input").results(Input):
            line_input.select_all()

    @on(Input.Submitted, "#line-input")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            line = int(event.value)
        except ValueError:
            self.dismiss(None)
            return
        self.dismiss(max(1, min(line, self._line_count)))

    def action_cancel(self) -> None:
        self.dismiss(None)
