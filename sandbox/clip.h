/* clip.h: the MP4 clip the sandbox serves as every result (spec/fixtures/clip.mp4, see clip.c). */
#ifndef SBX_CLIP_H
#define SBX_CLIP_H

extern const unsigned char sandbox_clip[];
extern const unsigned char sandbox_clip_end[];
#define sandbox_clip_len ((unsigned long)(sandbox_clip_end - sandbox_clip))

#endif
