"""The descent: the compiled chunk program and its loop state (:mod:`~jaxnst.optim.optimize`,
:mod:`~jaxnst.optim.loop`), the line searches (:mod:`~jaxnst.optim.linesearch`), how programs are
compiled (:mod:`~jaxnst.optim.programs`) and accounted for (:mod:`~jaxnst.optim.compilation`), and
what the descent moves: pixels or a Laplacian pyramid (:mod:`~jaxnst.optim.param`).

May import :mod:`jaxnst.loss` and :mod:`jaxnst.model`; never the pipeline or a front end.
"""
