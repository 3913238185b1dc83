//! `nuage image import|ls|rm`: the node's local image store, from the
//! command line. Works on the store of the node whose data dir is given,
//! also while that node's server runs (its agent reads the store afresh at
//! every pod start).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use nuage_agent::images::{ImageStore, ImageSummary};

use crate::files;

/// `nuage image …`.
#[derive(Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Import an OCI image archive or a `docker save` tarball.
    Import {
        /// The archive (tar, optionally gzipped).
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List the images in the store.
    #[command(alias = "list")]
    Ls {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove an image by name or id.
    #[command(alias = "remove")]
    Rm {
        /// `busybox`, `img/serv:0.5.0`, `name@sha256:…`, or an image id.
        #[arg(required = true)]
        names: Vec<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Args)]
struct StoreArgs {
    /// The node's data dir (default: $NUAGE_DATA_DIR, else the XDG data dir).
    #[arg(long, env = "NUAGE_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

impl StoreArgs {
    fn open(&self) -> anyhow::Result<ImageStore> {
        let dir = self
            .data_dir
            .clone()
            .unwrap_or_else(files::default_data_dir);
        ImageStore::open(&dir).with_context(|| format!("open the image store in {}", dir.display()))
    }
}

/// Runs an image command. Blocking file work: call it outside the async
/// runtime or through `spawn_blocking`.
pub fn run(args: ImageArgs) -> anyhow::Result<()> {
    match args.command {
        ImageCommand::Import { file, store } => {
            let names = store
                .open()?
                .import(&file)
                .with_context(|| format!("import {}", file.display()))?;
            for name in names {
                println!("Loaded image: {name}");
            }
        }
        ImageCommand::Ls { store } => print!("{}", table(&store.open()?.list()?)),
        ImageCommand::Rm { names, store } => {
            let store = store.open()?;
            for name in names {
                for removed in store.remove(&name)? {
                    println!("Untagged: {removed}");
                }
            }
        }
    }
    Ok(())
}

/// The `docker images` table: REPOSITORY TAG IMAGE ID SIZE.
fn table(images: &[ImageSummary]) -> String {
    let rows: Vec<[String; 4]> = images
        .iter()
        .map(|i| {
            let hex = i.id.strip_prefix("sha256:").unwrap_or(&i.id);
            [
                i.repository.clone(),
                i.tag.clone(),
                hex.chars().take(12).collect(),
                human_size(i.size),
            ]
        })
        .collect();
    let header = ["REPOSITORY", "TAG", "IMAGE ID", "SIZE"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// Sizes as Docker prints them: decimal units, three significant digits.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        let precision = if value < 10.0 {
            2
        } else if value < 100.0 {
            1
        } else {
            0
        };
        format!("{value:.precision$}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_044_480), "1.04MB");
        assert_eq!(human_size(4_260_000), "4.26MB");
        assert_eq!(human_size(77_800_000), "77.8MB");
        assert_eq!(human_size(1_230_000_000), "1.23GB");
    }

    #[test]
    fn table_aligns_columns() {
        let row = ImageSummary {
            name: "docker.io/library/busybox:latest".into(),
            repository: "busybox".into(),
            tag: "latest".into(),
            id: format!("sha256:{}", "ab".repeat(32)),
            digest: String::new(),
            size: 1_044_480,
            created: None,
        };
        let t = table(&[row]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "REPOSITORY   TAG      IMAGE ID       SIZE");
        assert_eq!(lines[1], "busybox      latest   abababababab   1.04MB");
    }
}
