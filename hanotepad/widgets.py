"""The status bar and the find/replace bar."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Button, Input, Label

from hanotepad.fileio import human_size
from hanotepad.messages import FindClosed, FindRequested, ReplaceRequested

SAVE_STATES = ("saved", "saving", "unsaved", "error")
PATH_WIDTH = 36


def short_path(path: str, width: int = PATH_WIDTH) -> str:
    """The end of a long path (the file name matters most): '…/notepad/notes.txt'."""
    if len(path) <= width:
        return path
    return "…" + path[-(width - 1) :]


class StatusBar(Horizontal):
    """File path, save state, a message, line:col and size; state shows as a CSS class."""

    path: reactive[str] = reactive("untitled")
    save_state: reactive[str] = reactive("saved")
    message: reactive[str] = reactive("")
    position: reactive[tuple[int, int]] = reactive((0, 0))
    file_size: reactive[int] = reactive(0)
    read_only: reactive[bool] = reactive(False)

    def compose(self) -> ComposeResult:
        # Kept, not queried: the app may update the bar while the screen is torn down.
        self._labels = [
            Label(id=f"status-{part}") for part in ("path", "state", "message", "position", "size")
        ]
        yield from self._labels

    def on_mount(self) -> None:
        self._show()

    # Each watcher updates only its own label: the bar changes on every keystroke.

    def watch_save_state(self, save_state: str) -> None:
        for name in SAVE_STATES:
            self.set_class(save_state == name, f"-{name}")
        self._show(1)

    def watch_read_only(self, read_only: bool) -> None:
        self.set_class(read_only, "-read-only")
        self._show(1)

    def watch_path(self) -> None:
        self._show(0)

    def watch_message(self) -> None:
        self._show(2)

    def watch_position(self) -> None:
        self._show(3)

    def watch_file_size(self) -> None:
        self._show(4)

    @property
    def text(self) -> str:
        """Everything the bar shows, as plain text (for tests and screen readers)."""
        return " | ".join(self._parts())

    def _parts(self) -> list[str]:
        row, column = self.position
        state = "read-only" if self.read_only else self.save_state
        return [
            short_path(self.path),
            state,
            self.message,
            f"Ln {row + 1}, Col {column + 1}",
            human_size(self.file_size),
        ]

    def _show(self, index: int | None = None) -> None:
        labels = getattr(self, "_labels", None)
        if not labels:
            return
        parts = self._parts()
        for position, (label, text) in enumerate(zip(labels, parts, strict=True)):
            if index is None or position == index:
                label.update(text)


class FindBar(Horizontal):
    """Find (and replace) inputs; shown with the ``-open`` class, ``-replace`` for replace."""

    BINDINGS = [
        Binding("escape", "close", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield Label("Find", classes="find-label")
        yield Input(placeholder="text to find (enter: next)", id="find-input")
        yield Label("Replace", classes="replace-part find-label")
        yield Input(
            placeholder="replacement (enter: replace)", id="replace-input", classes="replace-part"
        )
        yield Button("All", id="replace-all", classes="replace-part", compact=True)

    @property
    def query_text(self) -> str:
        return self.query_one("#find-input", Input).value

    def open(self, *, replace: bool, query: str | None = None) -> None:
        self.add_class("-open")
        self.set_class(replace, "-replace")
        find_input = self.query_one("#find-input", Input)
        if query:
            find_input.value = query
        target = "#replace-input" if replace and find_input.value else "#find-input"
        self.query_one(target, Input).focus()

    def action_close(self) -> None:
        self.remove_class("-open")
        self.post_message(FindClosed())

    @on(Input.Submitted, "#find-input")
    def _find(self, event: Input.Submitted) -> None:
        event.stop()
        if self.has_class("-replace"):
            self.query_one("#replace-input", Input).focus()
        self.post_message(FindRequested(event.value))

    @on(Input.Submitted, "#replace-input")
    def _replace(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(ReplaceRequested(self.query_text, event.value))

    @on(Button.Pressed, "#replace-all")
    def _replace_all(self, event: Button.Pressed) -> None:
        event.stop()
        replacement = self.query_one("#replace-input", Input).value
        self.post_message(ReplaceRequested(self.query_text, replacement, everywhere=True))
