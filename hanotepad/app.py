"""The hanotepad Textual app: the commands, dialogs and palette over ``DocumentApp``.

The document, autosave and session logic are plain classes (document.py,
autosave.py, session.py) driven by ``DocumentApp`` (core.py); this layer adds
what a user does: the key bindings, file dialogs, find/replace, go to line,
and the command palette. ``make_app()`` builds it (tests use ``run_test()``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import SystemCommand
from textual.binding import Binding
from textual.screen import ModalScreen, Screen

from hanotepad.autosave import Debouncer
from hanotepad.commands import editor_commands
from hanotepad.core import DocumentApp
from hanotepad.dialogs import ChoiceDialog, GotoLineDialog, PathDialog
from hanotepad.document import DocumentFile, SaveStatus, Snapshot
from hanotepad.editing import find_in, go_to_line, replace_in
from hanotepad.fileio import SIZE_LIMIT
from hanotepad.messages import FindClosed, FindRequested, ReplaceRequested, SavedAs
from hanotepad.widgets import FindBar


class HaNotepadApp(DocumentApp):
    """An ordinary text editor that autosaves, remembers where you were, and never loses text."""

    CSS_PATH = "hanotepad.tcss"
    TITLE = "hanotepad"
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("f12", "save_as", "Save as", priority=True),
        Binding("ctrl+o", "open", "Open", priority=True),
        Binding("ctrl+n", "new", "New", priority=True),
        Binding("ctrl+f", "find", "Find", priority=True),
        Binding("f3", "find_next", "Find next", show=False, priority=True),
        Binding("shift+f3", "find_previous", "Find previous", show=False, priority=True),
        Binding("ctrl+r", "replace", "Replace", priority=True),
        Binding("ctrl+g", "goto_line", "Go to line", priority=True),
        Binding("alt+z", "toggle_wrap", "Wrap", priority=True),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(self, path: Path | None = None, **options: Any) -> None:
        super().__init__(path, **options)
        self._find_bar: FindBar | None = None
        self._find_query = ""

    # ----------------------------------------------------- file commands

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Our shortcuts act on the editor: not while a dialog is open.
        if action in {binding.action for binding in self.BINDINGS if isinstance(binding, Binding)}:
            return not isinstance(self.screen, ModalScreen)
        return True

    def action_save(self) -> None:
        if self.doc is None:
            self.action_save_as()
        elif self.read_only:
            self.show_problem("this file is read-only: save as (f12) to keep a copy")
        else:
            self._save_explicitly(self.doc)

    def action_save_as(self) -> None:
        current = self.doc.path if self.doc is not None else None
        folder = current.parent if current is not None else Path.cwd()
        initial = str(current) if current is not None else str(folder / "untitled.txt")
        self.push_screen(
            PathDialog("Save as", folder=folder, initial=initial, action="Save"),
            self._save_as_chosen,
        )

    def _save_as_chosen(self, path: Path | None) -> None:
        if path is None:
            return
        if path.is_dir():
            self.show_problem(f"{path} is a folder: type a file name inside it")
        elif path.exists() and (self.doc is None or path != self.doc.path):
            self.push_screen(
                ChoiceDialog(
                    "Replace file?",
                    f"{path} already exists. Replace it with this text?",
                    [("cancel", "Cancel"), ("replace", "Replace")],
                    cancel="cancel",
                ),
                lambda choice: self._save_as_confirmed(path) if choice == "replace" else None,
            )
        else:
            self._save_as_confirmed(path)

    def _save_as_confirmed(self, path: Path) -> None:
        self.flush()
        encoding = self.doc.encoding if self.doc is not None else "utf-8"
        target = DocumentFile(path, encoding=encoding, size_limit=self.size_limit)
        snapshot = Snapshot(target.generation, self.editor.revision, self.editor.text)
        self._save_as_worker(target, snapshot)

    @work(thread=True, group="load", name="save-as", exit_on_error=False)
    def _save_as_worker(self, target: DocumentFile, snapshot: Snapshot) -> None:
        target.overrule_disk()  # the user confirmed replacing whatever is there
        self.post_message(SavedAs(target, target.save(snapshot, force=True)))

    @on(SavedAs)
    def _saved_as(self, message: SavedAs) -> None:
        outcome = message.outcome
        if outcome.status is not SaveStatus.SAVED:
            self.show_problem(outcome.message or f"cannot save {outcome.path}")
            return
        # The buffer stays as it is (cursor, undo history); only its file changes.
        with self._buffer_lock:
            self.doc = message.target
            self.read_only = self.editor.read_only = self.status.read_only = False
        self.status.path = str(outcome.path)
        self.status.file_size = outcome.size
        self.status.message = f"saved as {outcome.path.name}"
        self._last_problem = None
        self.status.save_state = "saved" if self._is_clean() else "unsaved"
        self.session = self.session.with_place(outcome.path, self._current_place())
        self._session_changed()
        self._start_watching(outcome.path)
        if not self._is_clean():
            self._autosaver.changed()

    def action_open(self) -> None:
        folder = self.doc.path.parent if self.doc is not None else Path.cwd()
        self.push_screen(
            PathDialog("Open file", folder=folder, initial=str(folder) + "/", action="Open"),
            lambda path: self.open_file(path) if path is not None else None,
        )

    def open_file(self, path: Path) -> None:
        """Save the current file, then open ``path`` (a problem keeps the current file)."""
        if self._leave_current():
            self._load_worker(Path(path).absolute())

    def action_new(self) -> None:
        if self._leave_current():
            self._become_untitled()

    def _leave_current(self) -> bool:
        """Save before switching away; False (and say why) if the text cannot be saved."""
        outcome = self.flush()
        if outcome is not None and outcome.status is SaveStatus.CONFLICT:
            self._ask_about_conflict()
            return False
        if outcome is not None and outcome.status is SaveStatus.FAILED:
            return False
        if self.doc is None and self.editor.text:
            self.show_problem("this text has no file: save as (f12) first, or clear it")
            return False
        self.save_session_now()
        return True

    # -------------------------------------------------- editing commands

    async def _open_find_bar(self, *, replace: bool) -> None:
        if self._find_bar is None:  # mounted on first use: a faster first screen
            self._find_bar = FindBar(id="findbar")
            await self.mount(self._find_bar, before=self.status)
        self._find_bar.open(replace=replace, query=self.editor.selected_text or None)

    async def action_find(self) -> None:
        await self._open_find_bar(replace=False)

    async def action_replace(self) -> None:
        await self._open_find_bar(replace=True)

    async def action_find_next(self) -> None:
        await self._find(self._find_query, backward=False)

    async def action_find_previous(self) -> None:
        await self._find(self._find_query, backward=True)

    @on(FindRequested)
    async def _find_requested(self, message: FindRequested) -> None:
        await self._find(message.query, backward=message.backward)

    @on(FindClosed)
    def _find_closed(self) -> None:
        self.editor.focus()

    async def _find(self, query: str, *, backward: bool) -> None:
        if not query:
            await self.action_find()
            return
        self._find_query = query
        self.status.message = find_in(self.editor, query, backward=backward)

    @on(ReplaceRequested)
    def _replace_requested(self, message: ReplaceRequested) -> None:
        if self.read_only or not message.query:
            return
        self._find_query = message.query
        self.status.message = replace_in(
            self.editor, message.query, message.replacement, everywhere=message.everywhere
        )

    def action_goto_line(self) -> None:
        editor = self.editor
        self.push_screen(
            GotoLineDialog(editor.document.line_count, editor.selection.end[0] + 1),
            self._goto_chosen,
        )

    def _goto_chosen(self, line: int | None) -> None:
        if line is not None:
            go_to_line(self.editor, line)
            self.editor.focus()

    def action_toggle_wrap(self) -> None:
        self.wrap_preference = self.editor.soft_wrap = not self.editor.soft_wrap
        self.status.message = "soft wrap on" if self.editor.soft_wrap else "soft wrap off"
        self._session_changed()

    def run_editor_action(self, name: str) -> None:
        """Run one of the editor's own actions (undo, cut...) from the palette."""
        self.editor.focus()
        self.call_later(self.editor.run_action, name)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from editor_commands(self)
        yield from super().get_system_commands(screen)

    async def action_quit(self) -> None:
        """Save and quit; ask first if some text could not be saved."""
        if self._exiting:
            return
        if self.doc is None and self.editor.text:
            self._ask_before_quitting(
                "This text has no file yet. Save it before quitting?",
                [("save", "Save as"), ("quit", "Quit without saving"), ("cancel", "Cancel")],
            )
            return
        outcome = self.flush()
        if outcome is not None and outcome.status is SaveStatus.CONFLICT:
            self._ask_about_conflict()
        elif outcome is not None and outcome.status is SaveStatus.FAILED:
            self._ask_before_quitting(
                f"Your last edits could not be saved:\n{outcome.message}",
                [("cancel", "Keep editing"), ("save", "Save as"), ("quit", "Quit and lose them")],
            )
        else:
            self._finish_exit()

    def _ask_before_quitting(self, question: str, choices: list[tuple[str, str]]) -> None:
        self.push_screen(
            ChoiceDialog("Quit", question, choices, cancel="cancel"), self._quit_answered
        )

    def _quit_answered(self, choice: str | None) -> None:
        if choice == "quit":
            self._finish_exit()
        elif choice == "save":
            self.action_save_as()


def make_app(
    path: str | Path | None = None,
    *,
    state_dir: str | Path | None = None,
    size_limit: int = SIZE_LIMIT,
    watch: bool = True,
    handle_signals: bool | None = None,
    autosave: Debouncer | None = None,
) -> HaNotepadApp:
    """Build the editor for ``path`` (None: the session's file, or untitled).

    ``state_dir`` defaults to ``$XDG_STATE_HOME/hanotepad``. Tests pass their own
    and run the app with ``run_test()``; a slow ``autosave`` debouncer lets them
    hold edits unsaved, ``watch=False`` hides changes on disk until a save.
    """
    return HaNotepadApp(
        Path(path) if path is not None else None,
        state_dir=Path(state_dir) if state_dir is not None else None,
        size_limit=size_limit,
        watch=watch,
        handle_signals=handle_signals,
        autosave=autosave,
    )
