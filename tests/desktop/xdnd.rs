//! Dropping files on the app's window for real, as a file manager does: the XDND protocol
//! (freedesktop.org's drag-and-drop protocol, version 5) spoken from an X window of the test's
//! own on the app's display. GTK hands the drop to WebKit and wry, Tauri reports it as a
//! `DragDropEvent::Drop` (the event the shell grants the dropped paths from) and the page
//! hears of it and calls `upload_files`. The shell refuses paths that did not arrive this way,
//! so this is the only way the tests can upload through the window (src-tauri/IPC.md).
//!
//! The exchange: `XdndEnter` and `XdndPosition` (the middle of the window) to the app's
//! toplevel; WebKit asks for the `text/uri-list` of the `XdndSelection` while the drag moves,
//! and is answered; once the target has answered a position (`XdndStatus`) after the data
//! went over, `XdndDrop`; the target ends with `XdndFinished`. A window that answers no
//! position within a second (its drop site not set up yet) is left and entered again.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use x11rb::connection::Connection;
use x11rb::protocol::Event;
use x11rb::protocol::xproto::{
    Atom, AtomEnum, ClientMessageEvent, ConnectionExt as _, CreateWindowAux, EventMask, MapState,
    PropMode, SELECTION_NOTIFY_EVENT, SelectionNotifyEvent, SelectionRequestEvent, Window,
    WindowClass,
};
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

const VERSION: u32 = 5;
/// How long a drag waits for the window to answer its first position before it comes in again.
const UNANSWERED: Duration = Duration::from_secs(1);

x11rb::atom_manager! {
    Atoms: AtomsCookie {
        XdndAware,
        XdndEnter,
        XdndLeave,
        XdndPosition,
        XdndStatus,
        XdndDrop,
        XdndFinished,
        XdndSelection,
        XdndActionCopy,
        TARGETS,
        _NET_WM_PID,
        URI_LIST: b"text/uri-list",
    }
}

/// Drops `paths` on the window of process `pid` (the app) and waits until it took the drop.
pub fn drop_files(pid: u32, paths: &[PathBuf], within: Duration) -> Result<()> {
    let (conn, screen) = x11rb::connect(None).context("connecting to the X display")?;
    let root = conn.setup().roots[screen].root;
    let atoms = Atoms::new(&conn)?.reply()?;
    let target = find_window(&conn, &atoms, root, pid)?
        .with_context(|| format!("no window of process {pid} takes drops (XdndAware)"))?;
    let geometry = conn.get_geometry(target)?.reply()?;
    let middle = conn
        .translate_coordinates(
            target,
            root,
            (geometry.width / 2) as i16,
            (geometry.height / 2) as i16,
        )?
        .reply()?;
    let source = conn.generate_id()?;
    conn.create_window(
        x11rb::COPY_DEPTH_FROM_PARENT,
        source,
        root,
        -10,
        -10,
        1,
        1,
        0,
        WindowClass::INPUT_OUTPUT,
        0,
        &CreateWindowAux::new(),
    )?;
    conn.set_selection_owner(source, atoms.XdndSelection, x11rb::CURRENT_TIME)?;
    let drag = Drag {
        conn: &conn,
        atoms: &atoms,
        source,
        target,
        at: (middle.dst_x, middle.dst_y),
        uris: uri_list(paths),
    };
    let result = drag.run(within);
    conn.destroy_window(source)?;
    conn.flush()?;
    result
}

/// Moves the pointer to (`x`, `y`) of the window of process `pid`, as a mouse would: WebKit
/// sees the motion (hover) as from a person.
pub fn point_at(pid: u32, x: i16, y: i16) -> Result<()> {
    let (conn, screen) = x11rb::connect(None).context("connecting to the X display")?;
    let root = conn.setup().roots[screen].root;
    let atoms = Atoms::new(&conn)?.reply()?;
    let window = find_window(&conn, &atoms, root, pid)?
        .with_context(|| format!("no window of process {pid}"))?;
    conn.warp_pointer(x11rb::NONE, window, 0, 0, 0, 0, x, y)?;
    conn.sync()?;
    Ok(())
}

/// One drag from `source` to `target`.
struct Drag<'a> {
    conn: &'a RustConnection,
    atoms: &'a Atoms,
    source: Window,
    target: Window,
    /// Where the drop lands, in root coordinates.
    at: (i16, i16),
    uris: Vec<u8>,
}

impl Drag<'_> {
    fn run(&self, within: Duration) -> Result<()> {
        self.enter()?;
        let start = Instant::now();
        let (mut served, mut dropped, mut answered) = (false, false, false);
        let mut moved = Instant::now();
        while start.elapsed() < within {
            let Some(event) = self.conn.poll_for_event()? else {
                // A pointer that moves sends positions on: a window that answered none of
                // them (its drop site not set up yet when the drag came in) is entered anew.
                if !answered && moved.elapsed() >= UNANSWERED {
                    self.send(self.atoms.XdndLeave, [0; 4])?;
                    self.enter()?;
                    moved = Instant::now();
                }
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            match event {
                Event::SelectionRequest(request) => served |= self.answer(&request)?,
                Event::ClientMessage(m) if m.type_ == self.atoms.XdndStatus && !dropped => {
                    answered = true;
                    // The data went over during a motion that was answered: drop. Until then,
                    // move on the spot again.
                    if served {
                        self.send(self.atoms.XdndDrop, [0, x11rb::CURRENT_TIME, 0, 0])?;
                        dropped = true;
                    } else {
                        std::thread::sleep(Duration::from_millis(20));
                        self.position()?;
                    }
                }
                Event::ClientMessage(m) if m.type_ == self.atoms.XdndFinished => return Ok(()),
                _ => {}
            }
        }
        bail!(
            "the window did not take the drop within {within:?} (answered: {answered}, data sent: {served}, dropped: {dropped})"
        )
    }

    fn enter(&self) -> Result<()> {
        self.send(
            self.atoms.XdndEnter,
            [VERSION << 24, self.atoms.URI_LIST, 0, 0],
        )?;
        self.position()
    }

    fn position(&self) -> Result<()> {
        let (x, y) = self.at;
        let packed = ((x as u32) << 16) | (y as u16 as u32);
        self.send(
            self.atoms.XdndPosition,
            [0, packed, x11rb::CURRENT_TIME, self.atoms.XdndActionCopy],
        )
    }

    /// Sends an XDND message to the target: the source window, then `data`.
    fn send(&self, kind: Atom, data: [u32; 4]) -> Result<()> {
        let [a, b, c, d] = data;
        let message = ClientMessageEvent::new(32, self.target, kind, [self.source, a, b, c, d]);
        self.conn
            .send_event(false, self.target, EventMask::NO_EVENT, message)?;
        self.conn.flush()?;
        Ok(())
    }

    /// Answers a request for the dragged data; whether it was the file list.
    fn answer(&self, request: &SelectionRequestEvent) -> Result<bool> {
        // An obsolete requestor names no property: the target's name is used.
        let property = if request.property == x11rb::NONE {
            request.target
        } else {
            request.property
        };
        let mut served = false;
        let reply_property = if request.target == self.atoms.URI_LIST {
            self.conn.change_property8(
                PropMode::REPLACE,
                request.requestor,
                property,
                self.atoms.URI_LIST,
                &self.uris,
            )?;
            served = true;
            property
        } else if request.target == self.atoms.TARGETS {
            self.conn.change_property32(
                PropMode::REPLACE,
                request.requestor,
                property,
                AtomEnum::ATOM,
                &[self.atoms.TARGETS, self.atoms.URI_LIST],
            )?;
            property
        } else {
            x11rb::NONE
        };
        let notify = SelectionNotifyEvent {
            response_type: SELECTION_NOTIFY_EVENT,
            sequence: 0,
            time: request.time,
            requestor: request.requestor,
            selection: request.selection,
            target: request.target,
            property: reply_property,
        };
        self.conn
            .send_event(false, request.requestor, EventMask::NO_EVENT, notify)?;
        self.conn.flush()?;
        Ok(served)
    }
}

/// The viewable window of process `pid` that takes drops, searched from `under` down.
fn find_window(
    conn: &RustConnection,
    atoms: &Atoms,
    under: Window,
    pid: u32,
) -> Result<Option<Window>> {
    for window in conn.query_tree(under)?.reply()?.children {
        let viewable = conn.get_window_attributes(window)?.reply()?.map_state == MapState::VIEWABLE;
        if !viewable {
            continue;
        }
        let owner = conn
            .get_property(false, window, atoms._NET_WM_PID, AtomEnum::CARDINAL, 0, 1)?
            .reply()?
            .value32()
            .and_then(|mut v| v.next());
        let aware = conn
            .get_property(false, window, atoms.XdndAware, AtomEnum::ATOM, 0, 1)?
            .reply()?
            .value_len
            > 0;
        if owner == Some(pid) && aware {
            return Ok(Some(window));
        }
        if let Some(found) = find_window(conn, atoms, window, pid)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// `paths` as a `text/uri-list`: `file://` URIs, percent-encoded, each line ending in CRLF.
fn uri_list(paths: &[PathBuf]) -> Vec<u8> {
    let mut list = Vec::new();
    for path in paths {
        list.extend_from_slice(file_uri(path).as_bytes());
        list.extend_from_slice(b"\r\n");
    }
    list
}

fn file_uri(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from("file://");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri
}

#[test]
fn paths_become_percent_encoded_file_uris() {
    assert_eq!(
        uri_list(&[
            PathBuf::from("/tmp/x/Security almanac 1.pdf"),
            PathBuf::from("/tmp/文件.pdf")
        ]),
        b"file:///tmp/x/Security%20almanac%201.pdf\r\nfile:///tmp/%E6%96%87%E4%BB%B6.pdf\r\n"
    );
}
