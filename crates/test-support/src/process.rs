//! Child processes of a test (`animoca-trade dev`, `index`) that never outlive
//! it: dropped, they get Ctrl-C (SIGINT) so they clean up (e.g. `dev` stops its
//! private PostgreSQL), then SIGKILL if they do not exit within 10 s.

use std::{
    process::{Child, Command, ExitStatus},
    time::{Duration, Instant},
};

/// A child process interrupted and reaped when dropped.
pub struct ChildGuard {
    child: Option<Child>,
}

impl ChildGuard {
    /// Guards `child`.
    pub fn new(child: Child) -> Self {
        Self { child: Some(child) }
    }

    /// The process.
    pub fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("the child is present until drop")
    }

    /// Sends SIGINT (Ctrl-C) and waits for the exit, killing it after `patience`.
    pub fn interrupt(&mut self, patience: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("the child is present until drop");
        let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
        let deadline = Instant::now() + patience;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                return child.wait().expect("wait for a killed child");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL now (a crash), and reap it.
    pub fn kill(&mut self) {
        let child = self.child.as_mut().expect("the child is present until drop");
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut()
            && matches!(child.try_wait(), Ok(None))
        {
            self.interrupt(Duration::from_secs(10));
        }
    }
}
