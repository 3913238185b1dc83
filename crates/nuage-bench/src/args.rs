//! `--flag value` arguments, `--flag` switches, and a command after `--`.

use std::collections::HashMap;
use std::str::FromStr;

/// Parsed arguments of one subcommand.
pub struct Args {
    flags: HashMap<String, Option<String>>,
    /// Everything after `--`.
    pub command: Vec<String>,
}

impl Args {
    /// Parses `--name value`, `--switch` and a trailing `-- cmd args`.
    pub fn parse(argv: &[String]) -> Result<Self, String> {
        let mut flags = HashMap::new();
        let mut i = 0;
        while i < argv.len() {
            let a = &argv[i];
            if a == "--" {
                return Ok(Self {
                    flags,
                    command: argv[i + 1..].to_vec(),
                });
            }
            let Some(name) = a.strip_prefix("--") else {
                return Err(format!("unexpected argument {a:?}"));
            };
            let value = argv.get(i + 1).filter(|v| !v.starts_with("--")).cloned();
            i += if value.is_some() { 2 } else { 1 };
            flags.insert(name.to_string(), value);
        }
        Ok(Self {
            flags,
            command: Vec::new(),
        })
    }

    /// A required `--name value`.
    pub fn str(&self, name: &str) -> Result<&str, String> {
        self.flags
            .get(name)
            .and_then(|v| v.as_deref())
            .ok_or_else(|| format!("--{name} is required"))
    }

    /// An optional `--name value`.
    pub fn opt(&self, name: &str) -> Option<&str> {
        self.flags.get(name).and_then(|v| v.as_deref())
    }

    /// `--name N`, or `default`.
    pub fn num<T: FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.opt(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("--{name}: bad number {v:?}")),
        }
    }

    /// Whether the switch `--name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.flags.contains_key(name)
    }
}
