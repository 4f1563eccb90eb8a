"""nbgrader's configuration for the labs: this folder is the course directory (source/ holds the assignments).

    nbgrader generate_assignment lab1_tensor_parallel_linear     # release/: the student version, no solution code
    nbgrader autograde lab1_tensor_parallel_linear               # grades submitted/<student>/lab1_.../
    nbgrader generate_feedback lab1_tensor_parallel_linear       # feedback/: the checks' messages per student
"""
import os

import ladder_edu.labs
import nbgrader

c = get_config()  # noqa: F821 - nbgrader provides get_config

c.CourseDirectory.root = "."
c.CourseDirectory.course_id = "ladder_edu"
# For nbgrader's exchange (release_assignment, collect, release_feedback on a shared machine or JupyterHub): a folder
# every user can write, the same in the students' configuration (notebooks/labs/README.md, "Grading a class").
# c.Exchange.root = "/srv/nbgrader/exchange"
# A check starts real ranks and bounds the student's function (30 s by default): leave room for that.
c.ExecutePreprocessor.timeout = 300
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
# Feedback pages read offline: nbgrader's feedback template, with ladder_edu/labs/templates/feedback searched first so
# that its mathjax.html.j2 replaces the one that fetches MathJax from a CDN (the labs have no equations).
c.HTMLExporter.extra_template_basedirs = [
    os.path.join(os.path.dirname(ladder_edu.labs.__file__), "templates"),
    os.path.join(os.path.dirname(nbgrader.__file__), "server_extensions", "formgrader", "templates"),
]
