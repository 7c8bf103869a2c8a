# The compiled module of _durable_compat.c: 1 when it defines PyEval_CallObject (Python >= 3.13).
PROVIDES_CALL_OBJECT: int
