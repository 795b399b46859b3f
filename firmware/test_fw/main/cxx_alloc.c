/*
 * The four C++ allocation symbols ESP-IDF's NVS library (C++) needs, for a toolchain whose
 * libstdc++/libsupc++ are empty stubs: the compile-check kit's (firmware-kit README,
 * "Limits"). main/CMakeLists.txt compiles this file ONLY when the C++ compiler finds no
 * real libsupc++.a; with Espressif's toolchain the library's own definitions are used.
 *
 * Same behaviour as libsupc++ with C++ exceptions off (ESP-IDF's default): nothrow new is
 * malloc, returning NULL on failure; delete[] is free. Names are the Itanium C++ ABI
 * manglings for ILP32 (size_t is unsigned int, "j").
 */
#include <stddef.h>
#include <stdlib.h>

/* std::nothrow: an empty struct object, one byte. */
const struct {
    char unused;
} _ZSt7nothrow = {0};

void *_ZnajRKSt9nothrow_t(size_t size, const void *tag);
void _ZdaPv(void *ptr);
void _ZdaPvj(void *ptr, size_t size);

/* operator new[](size_t, std::nothrow_t const&) */
void *_ZnajRKSt9nothrow_t(size_t size, const void *tag)
{
    (void)tag;
    return malloc(size != 0 ? size : 1);
}

/* operator delete[](void*) */
void _ZdaPv(void *ptr) { free(ptr); }

/* operator delete[](void*, size_t) */
void _ZdaPvj(void *ptr, size_t size)
{
    (void)size;
    free(ptr);
}
