//! The pure part of wharf's Dockerfile builder: parsing a Dockerfile into typed stages,
//! expanding words as Docker does, `.dockerignore` matching and the stages a target needs.
//! These are pure; `context` (the build context on disk) and `executor` (running a build
//! through the engine) do the I/O.

pub mod context;
pub mod error;
pub mod executor;
pub mod fetch;
pub mod git;
pub mod ignore;
pub mod instructions;
pub mod mounts;
pub mod parser;
pub mod shell;

#[cfg(test)]
mod tests;

pub use error::{Error, Result};
pub use ignore::Ignore;
pub use instructions::{
    ArgDecl, CmdLine, Copy, Dockerfile, Healthcheck, Instruction, Kind, Mount, Run, Sharing, Stage,
};
pub use parser::Heredoc;
pub use shell::{expand_heredoc, expand_word, expand_words};

/// Parses Dockerfile text into its stages.
pub fn parse(text: &str) -> Result<Dockerfile> {
    instructions::from_parsed(parser::parse_nodes(text)?)
}

impl Dockerfile {
    /// The values of the ARGs before the first FROM, in order: a build arg given for the name
    /// wins, else the default expanded with the values before it. Unset ones are left out.
    pub fn meta_arg_values(&self, build_args: &dyn Fn(&str) -> Option<String>) -> Result<Vec<(String, String)>> {
        let mut values: Vec<(String, String)> = Vec::new();
        for arg in &self.meta_args {
            let value = match build_args(&arg.name) {
                Some(v) => Some(v),
                None => match &arg.default {
                    Some(d) => {
                        let lookup = |name: &str| values.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.clone());
                        Some(expand_word(d, self.escape, &lookup)?)
                    }
                    None => None,
                },
            };
            if let Some(v) = value {
                values.retain(|(n, _)| n != &arg.name);
                values.push((arg.name.clone(), v));
            }
        }
        Ok(values)
    }

    /// The index of the stage named `name` (case-insensitive) among the first `before` stages.
    fn stage_named(&self, name: &str, before: usize) -> Option<usize> {
        let name = name.to_lowercase();
        self.stages[..before].iter().position(|s| s.name.as_deref() == Some(name.as_str()))
    }

    /// The stages stage `index` uses directly: its FROM, `COPY --from` and
    /// `RUN --mount=from=`. A reference by number must be to an earlier stage; a name that is
    /// no earlier stage's is an image.
    fn stage_deps(&self, index: usize, meta: &[(String, String)]) -> Result<Vec<usize>> {
        let lookup = |name: &str| meta.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let stage = &self.stages[index];
        let mut deps = Vec::new();
        let base = stage.expand_base(self.escape, &lookup).unwrap_or_else(|_| stage.base.clone());
        deps.extend(self.stage_named(&base, index));
        let mut refer = |from: &str, line: usize| -> Result<()> {
            let from = if from.contains('$') {
                expand_word(from, self.escape, &lookup).unwrap_or_else(|_| from.to_string())
            } else {
                from.to_string()
            };
            if let Ok(n) = from.parse::<usize>() {
                if n >= index {
                    return Err(Error::at(
                        line,
                        format!("invalid from flag value {n}: refers to current or future build stage"),
                    ));
                }
                deps.push(n);
            } else {
                deps.extend(self.stage_named(&from, index));
            }
            Ok(())
        };
        for instruction in &stage.instructions {
            match &instruction.kind {
                Kind::Copy(c) => {
                    if let Some(from) = &c.from {
                        refer(from, instruction.line)?;
                    }
                }
                Kind::Run(r) => {
                    for m in &r.mounts {
                        if let Mount::Bind { from: Some(f), .. } | Mount::Cache { from: Some(f), .. } = m {
                            refer(f, instruction.line)?;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(deps)
    }
}

/// The indices of the stages building `target` (default: the last stage) needs, itself
/// included, in dependency order (every stage after those it uses).
pub fn stages_needed(df: &Dockerfile, target: Option<&str>) -> Result<Vec<usize>> {
    let last = match target {
        None => df.stages.len().checked_sub(1).ok_or(Error::NoStages)?,
        Some(t) => df.stage_named(t, df.stages.len()).ok_or_else(|| Error::TargetNotFound(t.to_string()))?,
    };
    let meta = df.meta_arg_values(&|_| None).unwrap_or_default();
    let mut needed = vec![false; df.stages.len()];
    let mut todo = vec![last];
    while let Some(i) = todo.pop() {
        if needed[i] {
            continue;
        }
        needed[i] = true;
        todo.extend(df.stage_deps(i, &meta)?);
    }
    // Every reference is to an earlier stage, so index order is a dependency order.
    Ok((0..df.stages.len()).filter(|&i| needed[i]).collect())
}
