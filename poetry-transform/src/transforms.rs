//! The transforms a server offers: [`Transform`], the registry [`Transforms`], and
//! the built-in ones (Twisted's `TransformService` and the factory's `xform_*`
//! methods).

use std::error::Error;
use std::fmt;
use std::time::Duration;

/// Why a transform could not transform a poem (the tutorial's transforms raise; here
/// they return this).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransformError {
    /// The poem is not UTF-8 text, so it has no letters to change case.
    NotText {
        /// How many bytes from the start are valid UTF-8.
        valid_up_to: usize,
    },
    /// The transform made gibberish of the poem and refuses to send it (the
    /// Introduction's `GibberishError`).
    Gibberish,
}

impl fmt::Display for TransformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransformError::NotText { valid_up_to } => write!(
                f,
                "the poem is not UTF-8 text (bad byte at offset {valid_up_to})"
            ),
            TransformError::Gibberish => f.write_str("the poem came out as gibberish"),
        }
    }
}

impl Error for TransformError {}

/// One transformation of poems, offered under a name (the tutorial's `xform_<name>`
/// methods).
///
/// # The contract
///
/// * [`apply`](Self::apply) runs on the reactor thread, once per request, and must
///   not block: a transform whose answer takes long says so with
///   [`delay`](Self::delay), and the server sends the reply after that delay while it
///   serves everyone else.
/// * An `Err` closes the connection without a reply, as the original server does for
///   a transform that raises.
pub trait Transform: fmt::Debug {
    /// The name clients ask for (`cummingsify` in `cummingsify.<poem>`).
    fn name(&self) -> &str;

    /// Transforms `poem`.
    ///
    /// # Errors
    ///
    /// [`TransformError`] when this poem cannot be transformed.
    fn apply(&mut self, poem: &[u8]) -> Result<Vec<u8>, TransformError>;

    /// How long the answer takes to be ready (zero for most).
    fn delay(&self) -> Duration {
        Duration::ZERO
    }
}

/// `cummingsify`: the poem in lower case, the way e. e. cummings wrote (Twisted's
/// `TransformService.cummingsify`). Unicode-aware: `ÉTÉ` becomes `été`, `ΘΑΛΑΣΣΑ`
/// becomes `θαλασσα`.
///
/// # Errors
///
/// [`TransformError::NotText`] if the poem is not UTF-8 (a binary "poem" has no case).
///
/// # Examples
///
/// ```
/// assert_eq!(poetry_transform::cummingsify("ÉTÉ à la MER".as_bytes()).unwrap(), "été à la mer".as_bytes());
/// assert!(poetry_transform::cummingsify(b"\xff").is_err());
/// ```
#[doc(alias = "xform_cummingsify")]
pub fn cummingsify(poem: &[u8]) -> Result<Vec<u8>, TransformError> {
    let text = std::str::from_utf8(poem).map_err(|e| TransformError::NotText {
        valid_up_to: e.valid_up_to(),
    })?;
    Ok(text.to_lowercase().into_bytes())
}

/// The `cummingsify` transform (see [`cummingsify`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Cummingsify;

impl Transform for Cummingsify {
    fn name(&self) -> &str {
        "cummingsify"
    }

    fn apply(&mut self, poem: &[u8]) -> Result<Vec<u8>, TransformError> {
        cummingsify(poem)
    }
}

/// `flaky-cummingsify`: the Introduction's `cummingsify` that sometimes raises
/// (Part 11's client 5.0), made deterministic: every `every`-th request fails with
/// [`TransformError::Gibberish`], the others are cummingsified. It shows why a client
/// must be ready for a transform to fail, and lets tests make it fail on purpose.
#[derive(Debug, Clone)]
pub struct FlakyCummingsify {
    every: u64,
    seen: u64,
}

impl FlakyCummingsify {
    /// Fails every `every`-th request (the first is request 1; 0 never fails).
    pub fn new(every: u64) -> Self {
        FlakyCummingsify { every, seen: 0 }
    }
}

impl Default for FlakyCummingsify {
    /// Fails every third request.
    fn default() -> Self {
        FlakyCummingsify::new(3)
    }
}

impl Transform for FlakyCummingsify {
    fn name(&self) -> &str {
        "flaky-cummingsify"
    }

    fn apply(&mut self, poem: &[u8]) -> Result<Vec<u8>, TransformError> {
        self.seen += 1;
        if self.every != 0 && self.seen % self.every == 0 {
            return Err(TransformError::Gibberish);
        }
        cummingsify(poem)
    }
}

/// `slow-cummingsify`: cummingsifies, but the answer is ready only after a pause, as
/// a transform that asks a slow service would be. The reactor goes on serving every
/// other client meanwhile; a client needs a timeout for it.
#[derive(Debug, Clone)]
pub struct SlowCummingsify {
    delay: Duration,
}

impl SlowCummingsify {
    /// Answers after `delay`.
    pub fn new(delay: Duration) -> Self {
        SlowCummingsify { delay }
    }
}

impl Default for SlowCummingsify {
    /// Answers after two seconds.
    fn default() -> Self {
        SlowCummingsify::new(Duration::from_secs(2))
    }
}

impl Transform for SlowCummingsify {
    fn name(&self) -> &str {
        "slow-cummingsify"
    }

    fn apply(&mut self, poem: &[u8]) -> Result<Vec<u8>, TransformError> {
        cummingsify(poem)
    }

    fn delay(&self) -> Duration {
        self.delay
    }
}

/// The transforms a server offers, by name (the tutorial's factory looks each name
/// up as a method, `xform_<name>`).
#[derive(Debug, Default)]
pub struct Transforms {
    all: Vec<Box<dyn Transform>>,
}

impl Transforms {
    /// No transforms at all.
    pub fn new() -> Self {
        Transforms::default()
    }

    /// The built-in ones: [`Cummingsify`], [`FlakyCummingsify`] (every third fails)
    /// and [`SlowCummingsify`] (two seconds).
    pub fn standard() -> Self {
        Transforms::new()
            .with(Cummingsify)
            .with(FlakyCummingsify::default())
            .with(SlowCummingsify::default())
    }

    /// Adds `transform`, replacing one of the same name.
    #[must_use]
    pub fn with(mut self, transform: impl Transform + 'static) -> Self {
        self.all.retain(|t| t.name() != transform.name());
        self.all.push(Box::new(transform));
        self
    }

    /// The transform called `name`, if offered.
    pub fn get_mut(&mut self, name: &[u8]) -> Option<&mut dyn Transform> {
        self.all
            .iter_mut()
            .find(|t| t.name().as_bytes() == name)
            .map(|t| &mut **t as &mut dyn Transform)
    }

    /// The names offered, in the order they were added.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.all.iter().map(|t| t.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cummingsify_lowers_every_script() {
        let poem = "ÉTÉ, Straße, МОРЕ, ΘΑΛΑΣΣΑ\r\n\tHERE";
        assert_eq!(
            cummingsify(poem.as_bytes()).unwrap(),
            "été, straße, море, θαλασσα\r\n\there".as_bytes()
        );
        assert_eq!(cummingsify(b"").unwrap(), b"");
        assert_eq!(
            cummingsify(b"ok\xc3"),
            Err(TransformError::NotText { valid_up_to: 2 })
        );
    }

    #[test]
    fn flaky_fails_every_nth() {
        let mut flaky = FlakyCummingsify::new(3);
        let results: Vec<bool> = (0..7).map(|_| flaky.apply(b"A").is_ok()).collect();
        assert_eq!(results, [true, true, false, true, true, false, true]);
        let mut never = FlakyCummingsify::new(0);
        assert!((0..10).all(|_| never.apply(b"A").is_ok()));
    }

    #[test]
    fn registry_finds_by_name_and_replaces() {
        let mut all = Transforms::standard().with(SlowCummingsify::new(Duration::from_secs(9)));
        assert_eq!(
            all.names().collect::<Vec<_>>(),
            ["cummingsify", "flaky-cummingsify", "slow-cummingsify"]
        );
        assert_eq!(
            all.get_mut(b"slow-cummingsify").unwrap().delay(),
            Duration::from_secs(9)
        );
        assert!(all.get_mut(b"CUMMINGSIFY").is_none());
        assert!(all.get_mut(b"").is_none());
    }
}
