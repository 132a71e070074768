# SPDX-License-Identifier: GPL-2.0-or-later
"""Files on disk, whatever they hold: outputs written atomically (a temporary file
renamed into place), the temporary files a killed run leaves behind, the files an
input reads (so no output overwrites one), and SHA-256 checksums.
"""
