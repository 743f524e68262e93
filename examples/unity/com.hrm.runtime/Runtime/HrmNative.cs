// P/Invoke declarations of include/hrm.h (ABI 1). Kept in step with the header by hand; the
// mono test in crates/hrm-ffi/artifact/tests/c_abi.rs runs them against libhrm.so.
using System;
using System.Runtime.InteropServices;

namespace Hrm
{
    internal static class Native
    {
        // libhrm.so on Linux, hrm.dll on Windows: Unity resolves it from the package's Plugins/.
        internal const string Library = "hrm";

        internal const uint AbiVersion = 1;
        internal const uint Ok = 0;
        internal const uint BufferTooSmall = 2;
        internal const uint ImageBottomUp = 1;

        [StructLayout(LayoutKind.Sequential)]
        internal struct Image
        {
            public uint struct_size;
            public uint pixel_format;
            public uint width;
            public uint height;
            public UIntPtr stride;
            public IntPtr data;
            public long timestamp;
            public uint flags;
            public uint reserved;
        }

        [StructLayout(LayoutKind.Sequential)]
        internal struct Face
        {
            public uint struct_size;
            public float score;
            [MarshalAs(UnmanagedType.ByValArray, SizeConst = 4)] public float[] bbox;
            [MarshalAs(UnmanagedType.ByValArray, SizeConst = 10)] public float[] keypoints;
            public UIntPtr au_count;
            public IntPtr au_ids;
            public IntPtr probabilities;
            public IntPtr present;
            // Version 2 and 3 of hrm_face: the crop transform, then the face mesh and head pose.
            [MarshalAs(UnmanagedType.ByValArray, SizeConst = 6)] public float[] crop_transform;
            public uint has_pose;
            public float mesh_score;
            [MarshalAs(UnmanagedType.ByValArray, SizeConst = 3)] public float[] pose;
            public uint landmark_count;
            [MarshalAs(UnmanagedType.ByValArray, SizeConst = 16)] public float[] pose_matrix;
            // Version 4: the face's track in a stream (-1 outside streams) and its atypicality score.
            public long track_id;
            public float atypicality;
        }

        /// <summary>A detection call: hrm_detect_frame or hrm_stream_push on a handle it holds.</summary>
        internal delegate uint RunFrame(ref Image image, out ResultHandle result);

        [DllImport(Library)] internal static extern IntPtr hrm_version();
        [DllImport(Library)] internal static extern uint hrm_abi_version();
        [DllImport(Library)] internal static extern uint hrm_last_error(byte[] buf, UIntPtr cap, out UIntPtr needed);
        [DllImport(Library)] internal static extern IntPtr hrm_status_str(uint status);

        [DllImport(Library)] internal static extern uint hrm_runtime_new_from_file(byte[] path, out RuntimeHandle runtime);
        [DllImport(Library)] internal static extern uint hrm_runtime_new_from_string(byte[] toml, byte[] baseDir, out RuntimeHandle runtime);
        [DllImport(Library)] internal static extern void hrm_runtime_free(IntPtr runtime);
        [DllImport(Library)] internal static extern uint hrm_runtime_device(RuntimeHandle runtime, uint stage, byte[] buf, UIntPtr cap, out UIntPtr needed);
        [DllImport(Library)] internal static extern uint hrm_runtime_au_ids(RuntimeHandle runtime, out IntPtr ids, out UIntPtr count);

        [DllImport(Library)] internal static extern uint hrm_detector_new(RuntimeHandle runtime, out DetectorHandle detector);
        [DllImport(Library)] internal static extern void hrm_detector_free(IntPtr detector);

        [DllImport(Library)] internal static extern uint hrm_bitmap_load(byte[] path, out BitmapHandle bitmap);
        [DllImport(Library)] internal static extern uint hrm_bitmap_image(BitmapHandle bitmap, ref Image image);
        [DllImport(Library)] internal static extern void hrm_bitmap_free(IntPtr bitmap);

        [DllImport(Library)] internal static extern uint hrm_stream_new(RuntimeHandle runtime, out StreamHandle stream);
        [DllImport(Library)] internal static extern uint hrm_stream_push(StreamHandle stream, ref Image image, out ResultHandle result);
        [DllImport(Library)] internal static extern uint hrm_stream_reset(StreamHandle stream);
        [DllImport(Library)] internal static extern void hrm_stream_free(IntPtr stream);

        [DllImport(Library)] internal static extern uint hrm_detect_frame(DetectorHandle detector, ref Image image, out ResultHandle result);
        [DllImport(Library)] internal static extern uint hrm_detect_aligned(DetectorHandle detector, IntPtr[] faces, UIntPtr count, out ResultHandle result);
        [DllImport(Library)] internal static extern uint hrm_result_face_count(ResultHandle result, out UIntPtr count);
        [DllImport(Library)] internal static extern uint hrm_result_face(ResultHandle result, UIntPtr index, ref Face face);
        [DllImport(Library)] internal static extern void hrm_result_free(IntPtr result);

        /// <summary>A NUL-terminated UTF-8 copy of a string, for char* parameters.</summary>
        internal static byte[] Utf8(string text)
        {
            if (text == null) return null;
            var bytes = System.Text.Encoding.UTF8.GetBytes(text);
            Array.Resize(ref bytes, bytes.Length + 1);
            return bytes;
        }

        /// <summary>Throws HrmException with libhrm's message unless the status is Ok.</summary>
        internal static void Check(uint status)
        {
            if (status == Ok) return;
            UIntPtr needed;
            hrm_last_error(null, UIntPtr.Zero, out needed);
            var buffer = new byte[(int)needed.ToUInt32()];
            string message = hrm_last_error(buffer, (UIntPtr)buffer.Length, out needed) == Ok
                ? System.Text.Encoding.UTF8.GetString(buffer, 0, buffer.Length - 1)
                : Marshal.PtrToStringAnsi(hrm_status_str(status));
            throw new HrmException(status, message);
        }
    }
}
