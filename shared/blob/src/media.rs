//! Where a message's media objects live: `{phone_number_id}/{message_id}/{file}`,
//! the original as media-fetch stored it (`original.{extension}`) next to the
//! files the processors derive from it (`thumb.webp`, `poster.jpg`, ...).

/// The key of message `message_id`'s object `file`.
pub fn media_key(phone_number_id: &str, message_id: &str, file: &str) -> String {
    format!("{phone_number_id}/{message_id}/{file}")
}

/// The key of a message's original, as media-fetch stores it.
pub fn original_key(phone_number_id: &str, message_id: &str, extension: &str) -> String {
    media_key(
        phone_number_id,
        message_id,
        &format!("original.{extension}"),
    )
}

/// The message an original's key belongs to, as (phone number id, message id);
/// None for a derived file or any other object.
pub fn original_of(key: &str) -> Option<(&str, &str)> {
    let mut segments = key.split('/');
    let (phone_number_id, message_id, file) =
        (segments.next()?, segments.next()?, segments.next()?);
    let extension = file.strip_prefix("original.")?;
    let valid = segments.next().is_none()
        && !phone_number_id.is_empty()
        && !message_id.is_empty()
        && !extension.is_empty();
    valid.then_some((phone_number_id, message_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn originals_are_told_from_derived_files() {
        let key = original_key("106540352242922", "msg_1", "jpg");
        assert_eq!(key, "106540352242922/msg_1/original.jpg");
        assert_eq!(original_of(&key), Some(("106540352242922", "msg_1")));
        for other in [
            media_key("106540352242922", "msg_1", "thumb.webp"),
            media_key("106540352242922", "msg_1", "poster.jpg"),
            "106540352242922/msg_1/original.".into(),
            "106540352242922/msg_1/original".into(),
            "106540352242922/msg_1/x/original.jpg".into(),
            "msg_1/original.jpg".into(),
            "/msg_1/original.jpg".into(),
        ] {
            assert_eq!(original_of(&other), None, "{other}");
        }
    }
}
