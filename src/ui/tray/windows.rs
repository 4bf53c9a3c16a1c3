//! Windows: a Win32 message loop on the tray thread; updates are announced with a thread
//! message.

use std::sync::mpsc;

use super::Command;
use super::local::Local;
use crate::ui::view::TrayView;

/// The few user32/kernel32 calls a message loop needs.
mod win32 {
    use std::ffi::c_void;

    #[repr(C)]
    pub struct Msg {
        pub hwnd: *mut c_void,
        pub message: u32,
        pub wparam: usize,
        pub lparam: isize,
        pub time: u32,
        pub pt: [i32; 2],
        /// Room for fields newer headers may add.
        pub reserved: [u32; 4],
    }

    pub const WM_APP: u32 = 0x8000;
    pub const PM_NOREMOVE: u32 = 0;

    // SAFETY (every declaration below): the signatures of user32's and kernel32's exports
    // as the Windows SDK declares them (WinUser.h, processthreadsapi.h).
    #[link(name = "user32")]
    unsafe extern "system" {
        pub fn GetMessageW(msg: *mut Msg, hwnd: *mut c_void, min: u32, max: u32) -> i32;
        pub fn PeekMessageW(
            msg: *mut Msg,
            hwnd: *mut c_void,
            min: u32,
            max: u32,
            remove: u32,
        ) -> i32;
        pub fn TranslateMessage(msg: *const Msg) -> i32;
        pub fn DispatchMessageW(msg: *const Msg) -> isize;
        pub fn PostThreadMessageW(thread: u32, msg: u32, wparam: usize, lparam: isize) -> i32;
    }

    #[link(name = "kernel32")]
    unsafe extern "system" {
        pub fn GetCurrentThreadId() -> u32;
    }
}

/// "Commands are waiting": the tray thread drains its channel.
const WM_WAKE: u32 = win32::WM_APP + 1;

pub struct Waker {
    thread: u32,
}

impl Waker {
    pub fn wake(&self) {
        // SAFETY: plain Win32 call; a thread that has gone makes it fail, harmlessly.
        unsafe { win32::PostThreadMessageW(self.thread, WM_WAKE, 0, 0) };
    }
}

pub fn spawn(view: TrayView, rx: mpsc::Receiver<Command>) -> Result<Waker, String> {
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("tray".into())
        .spawn(move || {
            // SAFETY: Msg is plain data; the calls only write into it.
            let mut msg: win32::Msg = unsafe { std::mem::zeroed() };
            // The thread's message queue must exist before anyone posts to it.
            // SAFETY: `msg` is a valid, writable Msg; a null window means this thread's
            // messages; PM_NOREMOVE only peeks.
            unsafe {
                win32::PeekMessageW(&mut msg, std::ptr::null_mut(), 0, 0, win32::PM_NOREMOVE)
            };
            // SAFETY: no arguments, no preconditions.
            let thread = unsafe { win32::GetCurrentThreadId() };
            let mut local = match Local::new(&view, rx) {
                Ok(l) => l,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(thread));
            loop {
                // SAFETY: `msg` is a valid, writable Msg owned by this thread.
                let r = unsafe { win32::GetMessageW(&mut msg, std::ptr::null_mut(), 0, 0) };
                if r <= 0 {
                    break;
                }
                if msg.hwnd.is_null() && msg.message == WM_WAKE {
                    if !local.drain() {
                        break;
                    }
                    continue;
                }
                // SAFETY: `msg` is the message GetMessageW just filled in.
                unsafe {
                    win32::TranslateMessage(&msg);
                    win32::DispatchMessageW(&msg);
                }
            }
        })
        .map_err(|e| format!("cannot start the tray thread: {e}"))?;
    let thread = ready_rx
        .recv()
        .unwrap_or_else(|_| Err("the tray thread ended".into()))?;
    Ok(Waker { thread })
}
