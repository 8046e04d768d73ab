//! The closed vocabularies of Raceday's data, written once: the core, the writer's checks and
//! (through the binding) the Python services all read them from here.

/// Internal race statuses (nztab-api §6), in lifecycle order; `unknown` keeps the raw value aside.
pub const RACE_STATUSES: [&str; 6] = ["open", "closed", "interim", "final", "abandoned", "unknown"];

/// Meeting categories: thoroughbred, harness, greyhound.
pub const CATEGORIES: [&str; 3] = ["T", "H", "G"];

/// Money-flow interval types (money-flow §6.3), from the widest cadence to the live one.
pub const INTERVAL_TYPES: [&str; 4] = ["5m", "2m", "30s", "live"];

/// The four odds types, in the order of an entrant's current-odds columns.
pub const ODDS_TYPES: [&str; 4] = ["fixed_win", "fixed_place", "pool_win", "pool_place"];

/// Result statuses of `race_results` (money-flow §10).
pub const RESULT_STATUSES: [&str; 3] = ["interim", "final", "protest"];

/// Kinds of move (rest-api §4.1), in the order a runner's moves are listed: Win money, Place
/// money, win price.
pub const MOVE_KINDS: [&str; 3] = ["win_money", "place_money", "win_price"];
