//! Throwaway PostgreSQL for tests (being built).
