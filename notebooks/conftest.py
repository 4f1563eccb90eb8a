"""nbval runs every notebook here, the labs' nbgrader sources (notebooks/labs/source) included. What nbgrader
writes beside them (the student release, submissions, autograded copies, feedback) is not collected."""
collect_ignore = ["labs/release", "labs/submitted", "labs/autograded", "labs/feedback"]
