//! Faults of a linker script: [`ScriptFault`].

use std::path::PathBuf;

/// What was wrong with a linker script.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScriptFault {
    /// A `/*` without its `*/`.
    #[error("unterminated comment at byte {at}")]
    UnterminatedComment {
        /// Where the comment opens.
        at: usize,
    },
    /// A command not followed by `(`.
    #[error("expected `(' after `{command}'")]
    ExpectedParen {
        /// The command.
        command: String,
    },
    /// A command whose parentheses do not close.
    #[error("unbalanced parentheses in `{command}'")]
    Unbalanced {
        /// The command.
        command: String,
    },
    /// Every member is AS_NEEDED: there is no library to open.
    #[error("names no library outside AS_NEEDED")]
    NoLibrary,
    /// A member is itself a linker script.
    #[error("member {} is itself a linker script", .member.display())]
    NestedScript {
        /// The member.
        member: PathBuf,
    },
    /// A DT_NEEDED entry led to a script.
    #[error("a linker script cannot be a dependency (DT_NEEDED {needed} of {})", .of.display())]
    Dependency {
        /// The DT_NEEDED entry.
        needed: String,
        /// The library that has it.
        of: PathBuf,
    },
    /// `Loader::map` was given a script.
    #[error("a linker script cannot be mapped; open it with Loader::open")]
    NotMappable,
}
