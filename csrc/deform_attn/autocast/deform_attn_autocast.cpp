// Autocast for the deformable attention ops: the attended tensors (value; query, key, value)
// run in the autocast dtype, while sampling locations and attention weights keep their own
// precision (the kernels read them in float32): a bfloat16 location on a 200-pixel-wide map
// would be off by up to a pixel.
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

#include <tuple>

namespace detr_efficient {
namespace {

using MsdaSignature = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                 const at::Tensor&);
using KdaSignature = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                        const at::Tensor&, const at::Tensor&, const at::Tensor&);

template <c10::DispatchKey kKey, c10::DeviceType kDevice>
at::Tensor ms_deform_attn_autocast(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                   const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                                   const at::Tensor& attention_weights) {
  const c10::impl::ExcludeDispatchKeyGuard no_autocast(kKey);
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("detr_efficient::ms_deform_attn", "")
                             .typed<MsdaSignature>();
  const auto dtype = at::autocast::get_autocast_dtype(kDevice);
  return op.call(at::autocast::cached_cast(dtype, value, kDevice), spatial_shapes, level_start_index,
                 sampling_locations, attention_weights);
}

template <c10::DispatchKey kKey, c10::DeviceType kDevice>
std::tuple<at::Tensor, at::Tensor> key_aware_deform_attn_autocast(
    const at::Tensor& query, const at::Tensor& key, const at::Tensor& value, const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index, const at::Tensor& sampling_locations) {
  const c10::impl::ExcludeDispatchKeyGuard no_autocast(kKey);
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("detr_efficient::key_aware_deform_attn", "")
                             .typed<KdaSignature>();
  const auto dtype = at::autocast::get_autocast_dtype(kDevice);
  return op.call(at::autocast::cached_cast(dtype, query, kDevice), at::autocast::cached_cast(dtype, key, kDevice),
                 at::autocast::cached_cast(dtype, value, kDevice), spatial_shapes, level_start_index,
                 sampling_locations);
}

}  // namespace

TORCH_LIBRARY_IMPL(detr_efficient, AutocastCPU, m) {
  m.impl("ms_deform_attn", &ms_deform_attn_autocast<c10::DispatchKey::AutocastCPU, c10::DeviceType::CPU>);
  m.impl("key_aware_deform_attn",
         &key_aware_deform_attn_autocast<c10::DispatchKey::AutocastCPU, c10::DeviceType::CPU>);
}

TORCH_LIBRARY_IMPL(detr_efficient, AutocastCUDA, m) {
  m.impl("ms_deform_attn", &ms_deform_attn_autocast<c10::DispatchKey::AutocastCUDA, c10::DeviceType::CUDA>);
  m.impl("key_aware_deform_attn",
         &key_aware_deform_attn_autocast<c10::DispatchKey::AutocastCUDA, c10::DeviceType::CUDA>);
}

}  // namespace detr_efficient
