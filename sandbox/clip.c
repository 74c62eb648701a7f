/* clip.c: embeds spec/fixtures/clip.mp4 in the sandbox (the assembler's .incbin), for every build.
 *
 * Both builds, make's executable and LuaRocks' pixflow.sandbox module, compile this file from the
 * top of the source tree, where the path below resolves; the builtin LuaRocks backend cannot run
 * a generator, so the clip is not turned into a C header first. GCC and Clang on ELF (Linux, which
 * the sandbox needs anyway for prctl) both take it; the symbols are hidden from the module's users. */
#include "clip.h"

__asm__(".pushsection .rodata\n"
        ".balign 16\n"
        ".globl sandbox_clip\n"
        ".hidden sandbox_clip\n"
        "sandbox_clip:\n"
        ".incbin \"spec/fixtures/clip.mp4\"\n"
        ".globl sandbox_clip_end\n"
        ".hidden sandbox_clip_end\n"
        "sandbox_clip_end:\n"
        ".byte 0\n"
        ".popsection\n");
