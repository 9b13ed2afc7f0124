//! Reusable protocols: Twisted's `twisted.protocols.basic`.
