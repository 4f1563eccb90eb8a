"""nbgrader's configuration for the labs: this folder is the course directory (source/ holds the assignments).

    nbgrader generate_assignment lab1_tensor_parallel_linear     # release/: the student version, no solution code
    nbgrader autograde lab1_tensor_parallel_linear               # grades submitted/<student>/lab1_.../
    nbgrader generate_feedback lab1_tensor_parallel_linear       # feedback/: the checks' messages per student
"""
c = get_config()  # noqa: F821 - nbgrader provides get_config

c.CourseDirectory.root = "."
c.CourseDirectory.course_id = "ladder_edu"
# A check starts real ranks and bounds the student's function (30 s by default): leave room for that.
c.ExecutePreprocessor.timeout = 300
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
