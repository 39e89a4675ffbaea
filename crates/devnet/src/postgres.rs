//! A private PostgreSQL cluster for `dev` when `DATABASE_URL` is unset: created
//! from the installed server binaries in a project-local folder, started on a
//! free port, stopped with the devnet. Root cannot run a server, so as root the
//! cluster belongs to the `postgres` system user.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
};

use tokio::process::Command;

/// What can go wrong running the private cluster.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    /// No server binaries found.
    #[error(
        "no PostgreSQL server binaries found (looked for initdb in /usr/lib/postgresql/*/bin and on PATH); \
         install them (Debian: apt-get install postgresql) or set DATABASE_URL"
    )]
    NotInstalled,
    /// A command failed.
    #[error("{command} failed: {detail}")]
    Command {
        /// What ran.
        command: String,
        /// Its output or error.
        detail: String,
    },
}

/// A running private cluster; stopped by [`PrivateCluster::stop`] (or left for the next `dev`).
#[derive(Debug)]
pub struct PrivateCluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl PrivateCluster {
    /// Creates (first time) and starts the cluster in `folder` on `port`.
    pub async fn start(folder: &Path, port: u16) -> Result<PrivateCluster, PostgresError> {
        let bin = server_binaries().ok_or(PostgresError::NotInstalled)?;
        let as_postgres = is_root().await;
        std::fs::create_dir_all(folder).map_err(|e| io_error("create", folder, &e))?;
        let data = folder.canonicalize().map_err(|e| io_error("resolve", folder, &e))?;
        let cluster = PrivateCluster { bin, data, port, as_postgres };
        if as_postgres {
            cluster.run("chown", Path::new("chown"), &["-R", "postgres:postgres", &cluster.data_arg()]).await?;
        }
        if !cluster.data.join("PG_VERSION").exists() {
            let initdb = cluster.bin.join("initdb");
            cluster
                .run("initdb", &initdb, &["-D", &cluster.data_arg(), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
                .await?;
        }
        let options = format!("-p {port} -k {} -c listen_addresses=127.0.0.1", cluster.data_arg());
        let log = cluster.data.join("server.log").display().to_string();
        let pg_ctl = cluster.bin.join("pg_ctl");
        // A cluster left running by an earlier `dev` is reused.
        if cluster.run("pg_ctl status", &pg_ctl, &["-D", &cluster.data_arg(), "status"]).await.is_err() {
            cluster
                .run("pg_ctl start", &pg_ctl, &["-D", &cluster.data_arg(), "-o", &options, "-l", &log, "-w", "start"])
                .await?;
        }
        Ok(cluster)
    }

    /// `postgres://` URL of database `name` in the cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Stops the server (fast shutdown).
    pub async fn stop(&self) -> Result<(), PostgresError> {
        let pg_ctl = self.bin.join("pg_ctl");
        self.run("pg_ctl stop", &pg_ctl, &["-D", &self.data_arg(), "-m", "fast", "-w", "stop"]).await
    }

    fn data_arg(&self) -> String {
        self.data.display().to_string()
    }

    async fn run(&self, what: &str, program: &Path, args: &[&str]) -> Result<(), PostgresError> {
        let mut command = if self.as_postgres && what != "chown" {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        let output = command
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| PostgresError::Command { command: what.to_owned(), detail: e.to_string() })?;
        if output.status.success() {
            Ok(())
        } else {
            let detail = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout).trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
            Err(PostgresError::Command { command: what.to_owned(), detail })
        }
    }
}

/// The newest `/usr/lib/postgresql/<v>/bin`, else the folder of `initdb` on PATH.
fn server_binaries() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths).find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
        })
    })
}

async fn is_root() -> bool {
    match Command::new("id").arg("-u").output().await {
        Ok(output) => String::from_utf8_lossy(&output.stdout).trim() == "0",
        Err(_) => false,
    }
}

fn io_error(what: &str, path: &Path, error: &std::io::Error) -> PostgresError {
    PostgresError::Command { command: format!("{what} {}", path.display()), detail: error.to_string() }
}
