"""nbval collects the lab *solutions*; the student versions raise NotImplementedError by design."""
collect_ignore = ["labs/student"]
