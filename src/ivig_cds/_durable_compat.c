/*
 * ivig_cds._durable_compat: the one C function durable-rules 2.0.28 needs from Python and
 * Python 3.13 no longer has.
 *
 * durable-rules' C extension (last release 2020) calls PyEval_CallObject, which Python 3.13
 * removed; built there, durable_rules_engine fails to load with "undefined symbol:
 * PyEval_CallObject". This module exports that symbol, defined as the call it always stood
 * for. _engine.py loads it with RTLD_GLOBAL before durable_rules_engine, so the dynamic
 * loader resolves durable's reference here. On Python 3.11 and 3.12 the symbol still exists
 * (a macro in the headers, a function in libpython) and this module defines nothing.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#if PY_VERSION_HEX >= 0x030D0000
PyAPI_FUNC(PyObject *) PyEval_CallObject(PyObject *callable, PyObject *args);

PyObject *
PyEval_CallObject(PyObject *callable, PyObject *args)
{
    return PyObject_CallObject(callable, args);
}
#define PROVIDES_CALL_OBJECT 1
#else
#define PROVIDES_CALL_OBJECT 0
#endif

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "ivig_cds._durable_compat",
    .m_doc = "PyEval_CallObject for durable-rules 2.0.28 on Python 3.13 and later.",
    .m_size = 0,
};

PyMODINIT_FUNC
PyInit__durable_compat(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "PROVIDES_CALL_OBJECT", PROVIDES_CALL_OBJECT) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
