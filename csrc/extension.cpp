// Entry point of detr_efficient._C: the Python module and the op library's root.
// Each op lives in its own folder (schema in <op>/<op>.cpp, kernels in <op>/cpu and
// <op>/cuda) and registers itself with TORCH_LIBRARY_FRAGMENT / TORCH_LIBRARY_IMPL.

#include <Python.h>
#include <torch/library.h>

#ifdef WITH_CUDA
#include <cuda.h>
#endif

namespace detr_efficient {

// CUDA version the kernels were compiled against (major * 1000 + minor * 10), 0 without CUDA.
int64_t cuda_version() {
#ifdef WITH_CUDA
  return CUDA_VERSION;
#else
  return 0;
#endif
}

TORCH_LIBRARY(detr_efficient, m) {
  m.def("cuda_version() -> int", &cuda_version);
}

}  // namespace detr_efficient

static struct PyModuleDef extension_module = {
    PyModuleDef_HEAD_INIT,
    "_C",
    "detr_efficient kernels, registered as torch.ops.detr_efficient.*",
    -1,
    nullptr,
};

PyMODINIT_FUNC PyInit__C(void) {
  return PyModule_Create(&extension_module);
}
