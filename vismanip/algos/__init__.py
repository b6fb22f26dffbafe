"""Learning algorithms: behavioural cloning now; DAgger and GAIL build on it."""
