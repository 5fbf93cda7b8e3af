"""The editor's core: a Textual app that keeps a buffer and its file in step.

``DocumentApp`` loads the file, autosaves it (``Autosaver`` thread, rules in
``DocumentFile``), notices changes on disk, asks on conflicts, keeps the session,
and saves everything on exit and on SIGTERM/SIGHUP. It has no commands of its own:
``HaNotepadApp`` (app.py) adds the bindings, dialogs and palette on top.
Blocking I/O runs in named thread workers that report with messages.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from asyncio import TimerHandle
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import App, ComposeResult
from textual.widgets import Footer, TextArea
from textual.widgets.text_area import Selection
from textual.worker import Worker, WorkerState

from hanotepad.autosave import Autosaver, Debouncer, LoopDebouncer
from hanotepad.dialogs import ChoiceDialog
from hanotepad.document import DiskChange, DocumentFile, SaveOutcome, SaveStatus, Snapshot
from hanotepad.fileio import SIZE_LIMIT, FileProblem, LoadedFile, read_text_file
from hanotepad.messages import (
    DiskChecked,
    DiskEvent,
    FileLoaded,
    LoadFailed,
    Reloaded,
    SaveDone,
    SaveStarted,
    SessionSaved,
)
from hanotepad.session import Place, Session, SessionStore, default_state_dir
from hanotepad.shutdown import exit_soon, terminal_gone, wait_for_quiet_input, write_recovery
from hanotepad.textarea import EditorArea
from hanotepad.widgets import StatusBar

logger = logging.getLogger(__name__)

RETRY_DELAY = 2.0
"""Seconds before retrying a failed autosave when the user types nothing more."""
DISK_SETTLE = 0.03
"""Coalesce watcher events (polling reports a save as deleted + created)."""
DRAIN_LIMIT = 1.0
"""On SIGTERM/SIGHUP, the longest wait for already-typed keys to reach the buffer."""
WRAP_LIMIT = 4_000_000
"""Above this many characters a file opens without soft wrap (wrapping it costs seconds)."""
NEW_FILE_NOTE = "new file"

Location = tuple[int, int]


class DocumentApp(App[None]):
    """A buffer bound to a file that autosaves, remembers where you were, never loses text."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        state_dir: Path | None = None,
        size_limit: int = SIZE_LIMIT,
        watch: bool = True,
        handle_signals: bool | None = None,
        autosave: Debouncer | None = None,
    ) -> None:
        super().__init__()
        self._initial_path = Path(path).expanduser().absolute() if path is not None else None
        self.state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
        self.size_limit = size_limit
        self._watch_enabled = watch
        self._handle_signals = handle_signals
        self.session_store = SessionStore(self.state_dir)
        self.session = Session()
        self.doc: DocumentFile | None = None
        """The file being edited; None for an untitled buffer."""
        self.read_only = False
        self.ready = False
        """True once the first file (or an empty buffer) is loaded."""
        self.reload_count = 0
        """How many times the buffer was reloaded after a change on disk."""
        self.recovered: Path | None = None
        """Where unsaveable text was kept on a signal exit, if it had to be."""
        # Held while the buffer or its file is replaced, and while the autosave
        # thread takes a snapshot: a snapshot never pairs a file with another text.
        self._buffer_lock = threading.Lock()
        self._autosaver = Autosaver(
            self._autosave_take,
            lambda outcome: self.post_message(SaveDone(outcome)),
            started=lambda: self.post_message(SaveStarted()),
            debouncer=autosave,
        )
        self._explicit_saves = 0
        self._retry_timer: TimerHandle | None = None
        self._session_saves = LoopDebouncer(self._write_session)
        self._watcher: Any = None
        self._check_timer: TimerHandle | None = None
        self._check_in_flight = False
        self._check_again = False
        self._recheck_after_save = False
        self._conflict_open = False
        self._exiting = False
        self._last_seen_revision = 0
        self._last_problem: str | None = None
        self.wrap_preference = True
        """Soft wrap as the user wants it; very large files open unwrapped regardless."""
        # Kept, not queried: handlers still run while the screen is torn down at exit.
        self.editor = EditorArea(id="editor", soft_wrap=True, tab_behavior="indent")
        self.editor.indent_type = "tabs"  # tab inserts a tab character, as in Notepad
        self.editor.edit_listener = self._autosaver.changed
        self.status = StatusBar(id="status")

    # ------------------------------------------------------------ lifecycle

    def compose(self) -> ComposeResult:
        yield self.editor
        yield self.status
        yield Footer()

    def on_mount(self) -> None:
        self.session, session_problem = self.session_store.load()
        self.wrap_preference = self.editor.soft_wrap = self.session.soft_wrap
        self.editor.focus()
        if self._handle_signals or (self._handle_signals is None and not self.is_headless):
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGHUP):
                loop.add_signal_handler(signum, self._on_exit_signal, signum)
        self._autosaver.start()
        target = self._initial_path
        if target is None and self.session.file:
            target = Path(self.session.file)
        if target is None:
            self._become_untitled()
            self.ready = True
        else:
            # The first file is read here, not in a worker: keys typed while it loads
            # wait in the message queue and land in the loaded text, not before it.
            try:
                self._file_loaded(FileLoaded(read_text_file(target, self.size_limit)))
            except FileProblem as problem:
                self._load_failed(LoadFailed(target, str(problem)))
        if session_problem:
            self.show_problem(session_problem)

    def on_ready(self) -> None:
        self.watch(self.editor, "scroll_y", self._place_changed, init=False)
        self.watch(self.editor, "scroll_x", self._place_changed, init=False)

    def on_unmount(self) -> None:
        self._autosaver.stop()
        if self._watcher is not None:
            self._watcher.stop()

    def _later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        """Call ``callback`` on the UI thread after ``delay`` seconds.

        Not ``set_timer``: a Textual one-shot timer whose deadline has passed by the
        time its task runs (a busy loop, or a delay of 0) is skipped, never fired.
        """
        return asyncio.get_running_loop().call_later(delay, callback)

    def show_problem(self, problem: str) -> None:
        """Show a problem in the status bar, and as a notification the first time."""
        self.status.message = problem
        if problem != self._last_problem:
            self._last_problem = problem
            self.notify(problem, severity="error", timeout=8)
        logger.warning("%s", problem)

    # -------------------------------------------------------------- loading

    @work(thread=True, group="load", name="load", exclusive=True, exit_on_error=False)
    def _load_worker(self, path: Path) -> None:
        try:
            self.post_message(FileLoaded(read_text_file(path, self.size_limit)))
        except FileProblem as problem:
            self.post_message(LoadFailed(path, str(problem)))

    @on(FileLoaded)
    def _file_loaded(self, message: FileLoaded) -> None:
        loaded = message.loaded
        if self.doc is not None:
            self.flush()  # keys typed while the new file was being read go to the old one
        place = self.session.place_for(loaded.path)
        with self._buffer_lock:
            self.doc = DocumentFile.from_loaded(loaded, self.size_limit)
            self._set_text(loaded.text, loaded.read_only, loaded.stamp.size if loaded.stamp else 0)
            exact = self.editor.document.exact
            if not exact:
                self.read_only = self.editor.read_only = self.status.read_only = True
            if place is not None:
                # The cursor now, so that keys typed at once land where it was; the
                # scroll again once the layout knows the editor's size.
                self._restore_place(place)
        if place is not None:
            self.call_after_refresh(self._restore_scroll, place)
        self.status.path = str(loaded.path)
        if not exact:
            self.show_problem(
                f"{loaded.path.name} mixes line endings or has form feeds that saving would "
                "change: opened read-only; save as (f12) writes a normalised copy"
            )
        elif loaded.warning:
            self.show_problem(loaded.warning)
        elif loaded.stamp is None:
            self.status.message = NEW_FILE_NOTE
        elif loaded.read_only:
            self.status.message = "read-only file: save as (f12) to keep a copy"
        self.session = self.session.with_place(loaded.path, place or Place())
        self._session_changed()
        # After the first paint: starting watchdog competes with it for the GIL.
        self.call_after_refresh(self._start_watching, loaded.path)
        self.ready = True

    @on(LoadFailed)
    def _load_failed(self, message: LoadFailed) -> None:
        if not self.ready:
            self._become_untitled()
            self.ready = True
        self.show_problem(message.problem)

    def _set_text(self, text: str, read_only: bool, size: int) -> None:
        """Replace the buffer (caller holds the buffer lock)."""
        editor = self.editor
        big = len(text) > WRAP_LIMIT
        if big and self.wrap_preference:
            self.notify("soft wrap is off for this large file: alt+z turns it on")
        # Unwrapped while the text is swapped: wrapping the old text again, or the
        # new one twice, would cost seconds for a big file.
        editor.soft_wrap = False
        editor.load_text(text)
        editor.soft_wrap = self.wrap_preference and not big
        self._last_seen_revision = 0
        self.read_only = editor.read_only = self.status.read_only = read_only
        self.status.save_state = "saved"
        self.status.message = ""
        self.status.file_size = size
        self._last_problem = None

    def _become_untitled(self) -> None:
        with self._buffer_lock:
            self.doc = None
            self._set_text("", False, 0)
        self.status.path = "untitled"
        self.session = replace(self.session, file=None)
        self._session_changed()

    def _restore_place(self, place: Place) -> None:
        self.editor.selection = Selection(self._clamp(place.anchor), self._clamp(place.cursor))
        self._restore_scroll(place)

    def _restore_scroll(self, place: Place) -> None:
        self.editor.scroll_to(place.scroll[0], place.scroll[1], animate=False, immediate=True)

    def _clamp(self, location: Location) -> Location:
        document = self.editor.document
        row = max(0, min(location[0], document.line_count - 1))
        return row, max(0, min(location[1], len(document[row])))

    def _current_place(self) -> Place:
        editor = self.editor
        anchor, cursor = editor.selection
        scroll = (round(editor.scroll_x), round(editor.scroll_y))
        return Place(cursor=cursor, anchor=anchor, scroll=scroll)

    # ------------------------------------------------------------- autosave

    @on(TextArea.Changed, "#editor")
    def _text_changed(self) -> None:
        revision = self.editor.revision
        if revision == self._last_seen_revision:
            return  # a load, not an edit
        self._last_seen_revision = revision
        # The autosave thread may have written this revision before this message came.
        if self.status.save_state != "error" and not self._is_clean():
            self.status.save_state = "unsaved"
        if self.doc is None:
            self._session_changed()  # the untitled size is updated with the session

    def _autosave_take(self) -> Callable[[], SaveOutcome] | None:
        """On the autosave thread: a write of the buffer as it is now, or None."""
        with self._buffer_lock:
            doc = self.doc
            if doc is None or self.read_only or self._conflict_open:
                return None
            revision, text = self.editor.document.snapshot()
            if doc.is_saved(doc.generation, revision):
                return None
            return partial(doc.save, Snapshot(doc.generation, revision, text))

    @on(SaveStarted)
    def _save_started(self) -> None:
        if self.status.save_state != "error":
            self.status.save_state = "saving"

    @on(SaveDone)
    def _save_done(self, message: SaveDone) -> None:
        if message.explicit:
            self._explicit_saves -= 1
        self._show_outcome(message.outcome)
        if self._recheck_after_save and not self._saving():
            self._recheck_after_save = False
            self._disk_event()

    def _saving(self) -> bool:
        return self._autosaver.busy or self._explicit_saves > 0

    def _show_outcome(self, outcome: SaveOutcome) -> None:
        doc = self.doc
        if doc is None or outcome.path != doc.path:
            return  # a save of a file we have since left
        if outcome.status is SaveStatus.SAVED:
            self.status.file_size = outcome.size
            if self.status.message == NEW_FILE_NOTE:
                self.status.message = ""
            if outcome.recreated:
                self.notify(f"{doc.path.name} had been deleted on disk: saved it again")
        if outcome.status in (SaveStatus.SAVED, SaveStatus.UP_TO_DATE):
            if self._is_clean():
                self.status.save_state = "saved"
                if self._last_problem is not None:
                    self.status.message = ""
                    self._last_problem = None
            elif not self._saving():
                self.status.save_state = "unsaved"
                if not self._autosaver.pending and not self._conflict_open:
                    self._autosaver.changed()  # edits no write has taken: take them
        elif outcome.status is SaveStatus.CONFLICT:
            self._ask_about_conflict()
        elif outcome.status is SaveStatus.FAILED:
            self.status.save_state = "error"
            self.show_problem(outcome.message or f"cannot save {doc.path}")
            if self._retry_timer is None:
                self._retry_timer = self._later(RETRY_DELAY, self._retry_save)

    def _retry_save(self) -> None:
        self._retry_timer = None
        if self.doc is not None and not self._is_clean():
            self._autosaver.changed()

    def _is_clean(self) -> bool:
        doc = self.doc
        return (
            doc is not None
            and not self._saving()
            and doc.is_saved(doc.generation, self.editor.revision)
        )

    def _save_explicitly(self, doc: DocumentFile, *, overrule: bool = False) -> None:
        """A save the user asked for: now, even with no new edits (creates a missing file)."""
        snapshot = Snapshot(doc.generation, self.editor.revision, self.editor.text)
        self._explicit_saves += 1
        self.status.save_state = "saving"
        self._save_worker(doc, snapshot, overrule)

    @work(thread=True, group="save", name="save", exit_on_error=False)
    def _save_worker(self, doc: DocumentFile, snapshot: Snapshot, overrule: bool) -> None:
        if overrule:
            doc.overrule_disk()
        self.post_message(SaveDone(doc.save(snapshot, force=True), explicit=True))

    def flush(self) -> SaveOutcome | None:
        """Write pending edits now, on this thread (switching files, quitting, signals)."""
        doc = self.doc
        if doc is None or self.read_only:
            return None
        revision = self.editor.revision
        if self._conflict_open:
            return SaveOutcome(SaveStatus.CONFLICT, doc.path, doc.generation, revision)
        if doc.is_saved(doc.generation, revision) and not self._saving():
            return None
        outcome = doc.save(Snapshot(doc.generation, revision, self.editor.text))
        if outcome.status is not SaveStatus.CONFLICT:  # asking is the caller's business
            self._show_outcome(outcome)
        return outcome

    # ------------------------------------------------------------- conflict

    def _ask_about_conflict(self) -> None:
        doc = self.doc
        if doc is None or self._conflict_open:
            return
        self._conflict_open = True
        self.status.save_state = "error"
        self.status.message = f"{doc.path.name} changed on disk: choose reload or keep mine"
        self.push_screen(
            ChoiceDialog(
                "File changed on disk",
                f"{doc.path} was changed by another program while you had unsaved edits.\n"
                "Reload it (your edits are dropped), or keep yours (the file is overwritten)?",
                [("keep", "Keep mine"), ("reload", "Reload from disk")],
            ),
            self._conflict_answered,
        )

    def _conflict_answered(self, choice: str | None) -> None:
        doc = self.doc
        if doc is None:
            self._conflict_open = False
        elif choice == "reload":
            self._reload_worker(doc)  # saving stays blocked until the reload lands
        else:
            self._conflict_open = False
            self.status.message = ""
            self._save_explicitly(doc, overrule=True)

    @work(thread=True, group="disk-check", name="reload", exit_on_error=False)
    def _reload_worker(self, doc: DocumentFile) -> None:
        try:
            self.post_message(Reloaded(doc.path, doc.reload(), None))
        except FileProblem as problem:
            self.post_message(Reloaded(doc.path, None, str(problem)))

    @on(Reloaded)
    def _reloaded(self, message: Reloaded) -> None:
        self._conflict_open = False
        self.status.message = ""
        if self.doc is None or message.path != self.doc.path:
            return
        if message.loaded is not None:
            self._apply_reload(message.loaded)
        else:
            self.show_problem(f"cannot reload: {message.problem}")
            self._autosaver.changed()  # this conflicts again, and asks again

    def _apply_reload(self, loaded: LoadedFile) -> None:
        doc = self.doc
        assert doc is not None
        place = self._current_place()
        with self._buffer_lock:
            doc.adopt(loaded)
            self._set_text(loaded.text, loaded.read_only, loaded.stamp.size if loaded.stamp else 0)
            self._restore_place(place)
        self.reload_count += 1

    # -------------------------------------------------------- disk watching

    def _start_watching(self, path: Path) -> None:
        if self._watch_enabled:
            self._watch_worker(path)

    @work(thread=True, group="watch", name="watch", exclusive=True, exit_on_error=False)
    def _watch_worker(self, path: Path) -> None:
        import time

        from hanotepad.fileio import remove_stale_temp_files
        from hanotepad.watcher import FileWatcher

        if self._watcher is None:
            self._watcher = FileWatcher(lambda: self.post_message(DiskEvent()))
        self._watcher.watch(path)
        logger.info("watching %s (%s)", path, self._watcher.mode)
        remove_stale_temp_files(path, older_than=60.0, now=time.time())

    @on(DiskEvent)
    def _disk_event(self) -> None:
        if self._check_timer is None:
            self._check_timer = self._later(DISK_SETTLE, self._start_disk_check)

    def _start_disk_check(self) -> None:
        self._check_timer = None
        if self.doc is None:
            return
        if self._check_in_flight:
            self._check_again = True
            return
        self._check_in_flight = True
        self._check_worker(self.doc)

    @work(thread=True, group="disk-check", name="disk-check", exit_on_error=False)
    def _check_worker(self, doc: DocumentFile) -> None:
        self.post_message(DiskChecked(doc.check_disk()))

    @on(DiskChecked)
    def _disk_checked(self, message: DiskChecked) -> None:
        self._check_in_flight = False
        if self._check_again:
            self._check_again = False
            self._disk_event()
        check = message.check
        doc = self.doc
        if doc is None or check.path != doc.path or check.generation != doc.generation:
            return
        if check.change is DiskChange.DELETED:
            self.status.save_state = "unsaved"
            self.show_problem(
                f"{doc.path.name} was deleted on disk: your text is kept; "
                "it is written again when you type or save"
            )
        elif check.change is DiskChange.UNREADABLE:
            self.show_problem(f"the file on disk changed and cannot be read: {check.message}")
        elif check.change is DiskChange.MODIFIED and check.loaded is not None:
            if self._saving():
                self._recheck_after_save = True  # decide once our save has landed
            elif self._is_clean() and not self._conflict_open:
                self._apply_reload(check.loaded)
                self.notify(f"reloaded {doc.path.name}: it changed on disk", timeout=3)
            else:
                self._ask_about_conflict()

    # -------------------------------------------------------------- session

    @on(TextArea.SelectionChanged, "#editor")
    def _selection_changed(self, event: TextArea.SelectionChanged) -> None:
        self.status.position = event.selection.end
        self._place_changed()

    def _place_changed(self) -> None:
        if self.ready:
            self._session_changed()

    def _session_changed(self) -> None:
        self._session_saves.changed()

    def _write_session(self) -> None:
        if self.doc is None:
            self.status.file_size = len(self.editor.text.encode("utf-8"))
        self._session_worker(self._session_snapshot())

    def _session_snapshot(self) -> Session:
        session = replace(self.session, soft_wrap=self.wrap_preference)
        if self.doc is not None:
            session = session.with_place(self.doc.path, self._current_place())
        self.session = session
        return session

    @work(thread=True, group="session", name="session", exit_on_error=False)
    def _session_worker(self, session: Session) -> None:
        try:
            self.session_store.save(session)
        except FileProblem as problem:
            self.post_message(SessionSaved(str(problem)))
        else:
            self.post_message(SessionSaved(None))

    @on(SessionSaved)
    def _session_saved(self, message: SessionSaved) -> None:
        self._session_saves.done()
        if message.problem:
            self.show_problem(message.problem)

    def save_session_now(self) -> None:
        """Write the session on this thread (switching files, exit)."""
        self._session_saves.cancel()
        try:
            self.session_store.save(self._session_snapshot())
        except FileProblem as problem:
            logger.warning("%s", problem)

    # ----------------------------------------------------------------- exit

    def _finish_exit(self) -> None:
        self._exiting = True
        self._autosaver.stop()
        self.save_session_now()
        if self._watcher is not None:
            self._watcher.stop()
        self.exit()

    def _on_exit_signal(self, signum: int) -> None:
        if self._exiting:
            return
        self._exiting = True
        logger.info("signal %d: saving and exiting", signum)
        self.run_worker(self._drain_and_exit(), name="signal-exit", exit_on_error=False)

    async def _drain_and_exit(self) -> None:
        """Let keys already typed reach the buffer, save everything, exit.

        Keys typed just before the signal may still sit in the terminal's input
        queue or in Textual's message queues. Wait (at most ``DRAIN_LIMIT``) until
        the terminal has nothing unread and the buffer stopped changing, so that
        "type, then SIGTERM at once" keeps every key.
        """
        try:
            await wait_for_quiet_input(
                lambda: self.editor.revision, self._queues_empty, limit=DRAIN_LIMIT
            )
            self.save_everything()
        finally:
            if not self.is_headless:
                if terminal_gone():
                    # Nothing to restore on a closed terminal, and Textual's shutdown
                    # would wait on it: everything is saved, so leave now.
                    logging.shutdown()
                    os._exit(0)
                exit_soon(3.0)
            self._finish_exit()

    def _queues_empty(self) -> bool:
        """No key is waiting in the app's, the screen's or the editor's message queue."""
        pumps = (self, self.screen, self.editor)
        return all(pump._message_queue.empty() for pump in pumps)

    def save_everything(self) -> None:
        """Last save when exiting without a user; text its file cannot take is kept aside."""
        outcome = self.flush()
        text = self.editor.text
        unsaved = (
            (self.doc is None and bool(text))
            or self._conflict_open
            or (outcome is not None and outcome.status in (SaveStatus.CONFLICT, SaveStatus.FAILED))
        )
        if unsaved:
            name = self.doc.path.name if self.doc is not None else "untitled.txt"
            self.recovered = write_recovery(self.state_dir, name, text)
        self.save_session_now()

    @on(Worker.StateChanged)
    def _worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is not WorkerState.ERROR:
            return
        error = event.worker.error
        logger.error("worker %s failed: %r", event.worker.name, error, exc_info=error)
        if event.worker.name == "save":
            self._explicit_saves -= 1
        elif event.worker.name in ("disk-check", "reload"):
            self._check_in_flight = False
        elif event.worker.name == "session":
            self._session_saves.done()
        self.show_problem(f"internal error in {event.worker.name}: {error}")


