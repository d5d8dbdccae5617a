"""numpy's half of the .npz round trip of tests/test_transfer.c.

    npz_roundtrip.py IN.npz OUT.npz OUT_COMPRESSED.npz

IN is what tg_npz_save wrote. Check that numpy.load sees exactly the arrays
the test saved: their names, dtypes and shapes, and values from the formula
value(j, k) = (j + 1) / 2 + k / 4 for element k (C order) of array j. Then
write OUT with numpy.savez (Zip64 extra fields, as numpy always writes
them): every array doubled, plus one array, "extra", that the test's model
does not have; and the same arrays with numpy.savez_compressed to OUT_COMPRESSED,
which tg_npz_load must refuse. Prints "numpy ok" and exits 0, or names the
first difference and exits 1.
"""
import sys

import numpy as np

EXPECTED = [  # name, dtype, shape, in the order of the test's set
    ("l0.Wax", np.float64, (3, 4)),
    ("head.W", np.float32, (2, 3)),
    ("view.T", np.float64, (2, 3)),
    ("scale", np.float32, ()),
]


def main(path_in, path_out, path_compressed):
    arrays = np.load(path_in)
    names = list(arrays.keys())
    if names != [name for name, _, _ in EXPECTED]:
        sys.exit("numpy sees the arrays %s" % names)
    doubled = {}
    for j, (name, dtype, shape) in enumerate(EXPECTED):
        a = arrays[name]
        if a.dtype != dtype or a.shape != shape:
            sys.exit("%s is %s %s, expected %s %s" % (name, a.dtype, a.shape, np.dtype(dtype), shape))
        want = ((j + 1) / 2 + np.arange(a.size) / 4).reshape(shape).astype(dtype)
        if not np.array_equal(a, want):
            sys.exit("%s holds %s, expected %s" % (name, a.ravel(), want.ravel()))
        doubled[name] = a * 2
    doubled["extra"] = np.ones(3, dtype=np.float32)
    np.savez(path_out, **doubled)
    np.savez_compressed(path_compressed, **doubled)
    print("numpy ok")


if __name__ == "__main__":
    main(*sys.argv[1:4])
