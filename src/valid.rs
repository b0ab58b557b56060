//! Checked settings: a [`Valid`] value has passed its [`Validate`] rules once, where it entered
//! the program (a file, a command-line flag, an app control, a preset), so the code that uses it
//! takes `Valid<T>` and never checks again.
//!
//! A leaf like `seed`: every layer may use it, and it imports nothing of the crate.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt::Display;

/// A setting that cannot be used, and why: the field's path in the configuration, the value it
/// holds, and the rule it breaks.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("invalid configuration: {field} = {value} {problem}")]
pub struct ConfigError {
    /// The field's path, e.g. `planner.elites`.
    pub field: &'static str,
    /// The rejected value as written in a configuration file.
    pub value: String,
    /// The rule, e.g. `must be ≤ planner.population (500)`.
    pub problem: String,
}

impl ConfigError {
    /// `field` holding `value` breaks the rule `problem`.
    pub fn new(field: &'static str, value: impl Display, problem: impl Into<String>) -> Self {
        Self {
            field,
            value: value.to_string(),
            problem: problem.into(),
        }
    }
}

/// The rules a setting must satisfy before it is used.
pub trait Validate {
    /// The first rule the value breaks, if any.
    fn validate(&self) -> Result<(), ConfigError>;

    /// The value, checked.
    fn validated(self) -> Result<Valid<Self>, ConfigError>
    where
        Self: Sized,
    {
        Valid::new(self)
    }
}

/// A value that passed [`Validate::validate`]; only validation makes one. Read it through
/// `Deref`; to change it, take it apart with [`Valid::into_inner`] and validate the result.
/// Serialises as the bare value; deserialising validates.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Valid<T>(T);

impl<T: Validate> Valid<T> {
    /// `value` if it satisfies every rule.
    pub fn new(value: T) -> Result<Self, ConfigError> {
        value.validate()?;
        Ok(Self(value))
    }
}

impl<T> Valid<T> {
    /// The checked value, to edit (and validate again).
    pub fn into_inner(self) -> T {
        self.0
    }

    /// Wraps a value whose validity follows from how it was built; only for this crate's
    /// combinators of valid parts (e.g. a valid configuration with a valid planner swapped in).
    pub(crate) fn assume_valid(value: T) -> Self {
        Self(value)
    }
}

impl<T> std::ops::Deref for Valid<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> AsRef<T> for Valid<T> {
    fn as_ref(&self) -> &T {
        &self.0
    }
}

impl<'de, T: Deserialize<'de> + Validate> Deserialize<'de> for Valid<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::new(T::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// `Ok` when `rule` holds, else the error for `field = value`.
pub(crate) fn check(
    rule: bool,
    field: &'static str,
    value: impl Display,
    problem: impl Into<String>,
) -> Result<(), ConfigError> {
    if rule {
        Ok(())
    } else {
        Err(ConfigError::new(field, value, problem))
    }
}

/// A count that must be at least 1.
pub(crate) fn positive_count(field: &'static str, value: usize) -> Result<(), ConfigError> {
    check(value >= 1, field, value, "must be at least 1")
}

/// A probability or share: inside [0, 1] (NaN is not).
pub(crate) fn unit_interval(field: &'static str, value: f32) -> Result<(), ConfigError> {
    check(
        (0.0..=1.0).contains(&value),
        field,
        value,
        "must lie in [0, 1]",
    )
}

/// A learning rate or other positive rate: finite and > 0.
pub(crate) fn positive_rate(field: &'static str, value: f64) -> Result<(), ConfigError> {
    check(
        value.is_finite() && value > 0.0,
        field,
        value,
        "must be a positive number",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Even(u32);

    impl Validate for Even {
        fn validate(&self) -> Result<(), ConfigError> {
            check(self.0.is_multiple_of(2), "even", self.0, "must be even")
        }
    }

    #[test]
    fn only_a_value_that_passes_its_rules_becomes_valid() {
        assert_eq!(*Valid::new(Even(4)).unwrap(), Even(4));
        let e = Even(3).validated().unwrap_err();
        assert_eq!(e.field, "even");
        assert_eq!(
            e.to_string(),
            "invalid configuration: even = 3 must be even"
        );
    }

    #[test]
    fn deserialising_validates_and_serialising_writes_the_bare_value() {
        let v: Valid<Even> = serde_json::from_str("8").unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), "8");
        let e = serde_json::from_str::<Valid<Even>>("7").unwrap_err();
        assert!(e.to_string().contains("even = 7 must be even"), "{e}");
    }

    #[test]
    fn the_range_helpers_reject_nan_and_name_the_value() {
        let e = unit_interval("x.share", f32::NAN).unwrap_err();
        assert_eq!((e.field, e.value.as_str()), ("x.share", "NaN"));
        assert!(unit_interval("x.share", 1.5).is_err());
        assert!(unit_interval("x.share", 0.0).is_ok());
        assert!(positive_rate("x.lr", 0.0).is_err());
        assert!(positive_rate("x.lr", f64::INFINITY).is_err());
        assert!(positive_count("x.n", 0).is_err());
        assert!(positive_count("x.n", 1).is_ok());
    }
}
