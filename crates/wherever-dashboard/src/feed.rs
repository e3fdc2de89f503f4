//! Feeding a dashboard from a `wherever-core` event subscription.
