# Warnings for Aurora's own tests, examples and benchmarks (never imposed on users of the target).
# -Werror comes from CMAKE_COMPILE_WARNING_AS_ERROR in the presets and in CI.
add_library(aurora_compile_options INTERFACE)
target_compile_options(aurora_compile_options INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Wold-style-cast)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # GCC warns that ThreadSanitizer does not model std::atomic_thread_fence (used inside Asio).
  target_compile_options(aurora_compile_options INTERFACE $<$<BOOL:${AURORA_TSAN}>:-Wno-tsan>)
endif()
